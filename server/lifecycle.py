"""The life of one computing request: its cancel token, and the watch on its connection.

Why polling: Starlette tells a handler that its client went away only when asked (``request.is_disconnected()``)
or when a write fails, and a non-streaming RLM run writes nothing for minutes. A 100 ms poll fires the run's token
well within the 1 s the server promises for stopping abandoned work. (A streaming response needs no watch:
sse-starlette stops the stream, and its ``finally`` fires the token, when the client goes away.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from engine.cancel import CancelToken

_log = logging.getLogger("outcore.server")


def new_token() -> CancelToken:
    from engine.cancel import CancelToken

    return CancelToken()


async def watch_disconnect(request: Request, token: CancelToken, what: str) -> None:
    """Fire ``token`` as soon as the client goes away (polled: Starlette reports it only when asked)."""
    while not token.is_set():
        if await request.is_disconnected():
            _log.info("client disconnected", extra={"fields": {"run": what}})
            token.cancel("cancelled")
            return
        await asyncio.sleep(0.1)
