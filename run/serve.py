"""Serve the HTTP API and the Gradio demo on one FastAPI app.

python -m run.serve [--host 127.0.0.1] [--port 7860] [--model PATH] [--key value ...]
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from data.settings import option, parse_config, user_errors
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


@contextmanager
def in_background(app: Any) -> Iterator[int]:
    """Serve `app` on 127.0.0.1 at a free port in a thread; yields the port, stops on exit."""
    import uvicorn

    # log_config=None: an embedded server leaves the logging setup of the process alone.
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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
    with user_errors():
        sys.exit(main(parse_args(None)))
