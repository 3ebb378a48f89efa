"""Shared fixtures: the repo root and a writer for small JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def write_jsonl(tmp_path):
    def write(name: str, rows: list) -> Path:
        path = tmp_path / name
        lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


def pytest_collection_modifyitems(config, items):
    """GPU-tier tests skip, with a reason, on machines without CUDA."""
    if not any("gpu" in item.keywords for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (GPU tier)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
