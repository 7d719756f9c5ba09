"""The life of one computing request: its cancel token, and the watch on its connection.

Why polling: Starlette tells a handler that its client went away only when asked (``request.is_disconnected()``)
or when a write fails, and a non-streaming RLM run writes nothing for minutes. A 100 ms poll fires the run's token
well within the 1 s the server promises for stopping abandoned work.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import Request

_log = logging.getLogger("outcore.server")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def new_token() -> Any:
    from engine.cancel import CancelToken

    return CancelToken()


async def watch_disconnect(request: Request, token: Any, what: str) -> None:
    """Fire ``token`` as soon as the client goes away (polled: Starlette reports it only when asked)."""
    while not token.is_set():
        if await request.is_disconnected():
            _log.info("client disconnected", extra={"fields": {"run": what}})
            token.cancel("cancelled")
            return
        await asyncio.sleep(0.1)
