"""Running the app under uvicorn, with a graceful shutdown that cancels in-flight runs instead of waiting for them.

Why a ``uvicorn.Server`` subclass: on SIGTERM/SIGINT uvicorn stops accepting and then waits for open requests; an
RLM run may take minutes, so outcore first fires every request's cancel token (each answers at once with finish
reason ``cancelled`` and its partial answer), then lets uvicorn drain the connections, then closes the models.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from server.app import create_app
from server.config import Settings
from server.registry import Registry, build_registry
from server.state import AppState

_log = logging.getLogger("outcore.server")


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.outcore = state
        self.bound: tuple[str, int] | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        # uvicorn would re-raise the signal after draining (exit status -15); a graceful stop exits 0 instead
        self.outcore.begin_shutdown()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for connections
        else:
            self.should_exit = True

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        for server in getattr(self, "servers", []):
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                self.bound = (host, port)
                print(
                    f"outcore serve: listening on http://{host}:{port} (models loading; /health says when ready)",
                    file=sys.stderr,
                    flush=True,
                )
                return


def _route_uvicorn_logs() -> None:
    """uvicorn's own log lines go through outcore's JSON-lines handler, not plain text."""
    handlers = logging.getLogger("outcore").handlers
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = list(handlers)
        lg.propagate = False
    logging.getLogger("uvicorn.access").disabled = True


def serve(settings: Settings, loader: Callable[[], Registry] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit status (2 when the models could not be loaded)."""
    if not logging.getLogger("outcore").handlers:  # not under the outcore CLI (which set the level already)
        from engine.log import configure

        configure()
    _route_uvicorn_logs()
    app = create_app(settings, loader or (lambda: build_registry(settings)))
    state = app.state
    s = settings.server
    config = uvicorn.Config(
        app,
        host=s.host,
        port=s.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(int(s.shutdown_grace_s), 1),
        lifespan="on",
        ws="none",
    )
    server = _Server(config, state)
    failed: list[str] = []

    def on_failed(msg: str) -> None:
        failed.append(msg)
        server.should_exit = True

    state.on_load_failed = on_failed
    server.run()
    if failed:
        print(f"outcore: error: could not load the served models: {failed[0]}", file=sys.stderr)
        return 2
    return 0
