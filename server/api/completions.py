"""``POST /v1/chat/completions`` and ``POST /v1/completions``: parse the body, then hand over to the flow.

Why the body is parsed here and not by FastAPI: a malformed, empty or absurdly nested body must answer 400 in
OpenAI's envelope with a message a person can act on (FastAPI would answer 422 ``{"detail": ...}``), and a
``RecursionError`` from ``json.loads`` on 5,000 nested objects must not escape as a 500.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from server import completions
from server.api import app_state
from server.errors import bad_request
from server.schemas import parse_chat, parse_text

router = APIRouter()


async def json_body(request: Request) -> Any:
    """The request's JSON document; 400 for an empty, invalid or too deeply nested body."""
    raw = await request.body()
    if not raw.strip():
        raise bad_request("the request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad_request(f"the request body is not valid JSON: {e}") from None
    except RecursionError:
        raise bad_request("the request body is nested too deeply to parse", code="json_too_deep") from None


@router.post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    creq = parse_chat(await json_body(request))
    return await completions.handle(app_state(request), request, creq)


@router.post("/v1/completions")
async def text(request: Request) -> Response:
    creq = parse_text(await json_body(request))
    return await completions.handle(app_state(request), request, creq)
