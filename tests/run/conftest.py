"""Shared fixtures for the run/ tests: one engine on the shipped SmolLM2 GGUF for the whole session."""

from __future__ import annotations

import pytest

# 256 tokens: the grammar then admits one short step and one check (see run/constraint.py), which
# keeps each generation to a few seconds on 2 CPU cores while still exercising every path.
TEST_MAX_TOKENS = 256


@pytest.fixture(scope="session")
def engine():
    from data.embedded import smollm2_gguf
    from run.config import EngineConfig
    from run.engine import Engine

    # Pinned: left empty, the model would be whatever `just export` last wrote in this checkout,
    # so a clean clone and a working tree would test different models.
    config = EngineConfig(
        model=str(smollm2_gguf()), max_tokens=TEST_MAX_TOKENS, selfcheck_rounds=1, timeout_s=600
    )
    engine = Engine(config)
    yield engine
    engine.close()
