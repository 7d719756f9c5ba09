"""The FastAPI app: ``create_app(settings, loader)`` where ``loader`` builds the served models.

Why a factory that takes the loader: tests and embedders inject any registry (scripted backends, an ``openai:``
pool) while ``outcore serve`` passes :func:`server.registry.build_registry`. Models load on a thread after the
socket is open, so ``/health`` can answer 503 while loading. The routes live in :mod:`server.api` (one router per
resource); auth, the body limit and request counting are the ASGI :class:`server.guard.Guard` in front of them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute

from server import errors
from server.api import completions, files, pages, runs
from server.config import Settings
from server.guard import Guard, Receive, Scope, Send
from server.registry import Registry
from server.state import AppState

_log = logging.getLogger("outcore.server")


class OutcoreApp:
    """The ASGI app ``outcore serve`` runs: the FastAPI routes behind the :class:`Guard`, with the state exposed."""

    def __init__(self, api: FastAPI, state: AppState, routes: Sequence[BaseRoute] = ()) -> None:
        self.api = api
        self.state = state
        self._asgi = Guard(api, state, routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)


def create_app(settings: Settings, loader: Callable[[], Registry]) -> OutcoreApp:
    state = AppState(settings, loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=state.load, name="outcore-load-models", daemon=True).start()
        sweeper = asyncio.create_task(_sweep(state))
        try:
            yield
        finally:
            sweeper.cancel()
            state.begin_shutdown()
            await asyncio.get_running_loop().run_in_executor(None, state.close)

    app = FastAPI(title="outcore", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.outcore = state
    errors.install(app)
    routers = [m.router for m in (pages, completions, files, runs)]
    for router in routers:
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=pages.STATIC), name="static")
    return OutcoreApp(app, state, [r for router in routers for r in router.routes])


async def _sweep(state: AppState) -> None:
    """Expire idle sessions and old runs now and then."""
    while True:
        await asyncio.sleep(2.0)
        try:
            await asyncio.get_running_loop().run_in_executor(None, state.sessions.expire)
            state.runs.prune()
            state.metrics.sessions.set(state.sessions.count())
        except Exception:  # noqa: BLE001 - the sweeper must not die
            _log.warning("sweep failed", exc_info=True)
