"""The HTTP routes, one router per resource; :func:`server.app.create_app` includes them all."""

from __future__ import annotations

from fastapi import Request

from server.state import AppState


def app_state(request: Request) -> AppState:
    """The running server's state (set by ``create_app``); every router reads it through this one accessor."""
    state: AppState = request.app.state.outcore
    return state
