"""Serve the HTTP API and the Gradio demo on one FastAPI app.

python -m run.serve [--host 127.0.0.1] [--port 7860] [--model PATH] [--key value ...]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from data.settings import ConfigError, option, parse_config
from run.config import EngineConfig, engine_config


@dataclass
class ServeConfig(EngineConfig):
    """Settings of `python -m run.serve`: the engine's, plus where to listen."""

    host: str = option("127.0.0.1", "interface to listen on; 0.0.0.0 exposes the server to the network")
    port: int = option(7860, "TCP port")
    ui: bool = option(True, "mount the Gradio demo at /")
    max_body_kb: int = option(64, "largest API request body in KiB; larger ones get a 422")


def parse_args(argv: list[str] | None) -> ServeConfig:
    """The server config from defaults, `--config FILE` and `--key value` flags."""
    return parse_config(ServeConfig, argv)


def main(config: ServeConfig) -> int:
    """Load the model, build the app and serve it until interrupted."""
    import uvicorn

    from run.api import create_app
    from run.engine import Engine

    engine = Engine(engine_config(config))
    app = create_app(engine, ui=config.ui, max_body_bytes=config.max_body_kb * 1024)
    url = f"http://{config.host}:{config.port}/"
    print(f"serve: model {engine.model_path}", flush=True)
    print(f"serve: open {url} (API: POST {url}v1/procedures, docs at {url}docs); Ctrl-C stops", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(parse_args(None)))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
