"""The ASGI guard in front of every route: auth, the body limit, request counting, and nothing escaping the app.

Why plain ASGI and not FastAPI dependencies: an unauthorised or oversized request is answered before a byte of its
body is read. Why the key is accepted in the URL only on ``/ui``: query strings end up in proxy logs and browser
history. The page is the one place a browser arrives with nothing but a URL, so ``/ui?api_key=KEY`` is exchanged
there for a short-lived, HttpOnly, SameSite=Strict cookie holding a random token, and the browser is redirected to
the same page without the key; the page's fetches and its EventSource then carry the cookie. Every other route
refuses ``?api_key=`` with 401, even when the key is right.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.routing import BaseRoute, Match

from server import errors
from server.errors import AUTH, SERVER, TOO_LARGE, APIError
from server.state import AppState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "outcore_ui"
UI_TOKEN_TTL_S = 3600.0  # the page's cookie lives an hour; opening /ui?api_key=KEY again renews it
_log = logging.getLogger("outcore.server")


class BodyTooLarge(APIError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"the request body is larger than the limit of {limit:,} bytes", TOO_LARGE, code="request_too_large"
        )


def _unauthorised(why: str = "invalid or missing API key (send 'Authorization: Bearer KEY')") -> APIError:
    return APIError(401, why, AUTH, code="invalid_api_key")


async def send_error(send: Send, err: APIError, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer with ``err`` in OpenAI's envelope, straight on the ASGI channel."""
    body = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body})


class UITokens:
    """Short-lived random tokens handed to the page in a cookie, in exchange for the key in its URL."""

    def __init__(self, ttl_s: float = UI_TOKEN_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._tokens: dict[str, float] = {}

    def issue(self) -> str:
        now = time.monotonic()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        token = secrets.token_urlsafe(32)
        self._tokens[token] = now + self.ttl_s
        return token

    def valid(self, token: str) -> bool:
        exp = self._tokens.get(token)
        return exp is not None and exp > time.monotonic()


def _cookie(headers: dict[bytes, bytes]) -> str | None:
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


class Guard:
    """Wraps the FastAPI app: ``Guard(app, state)`` is the ASGI app ``outcore serve`` runs."""

    def __init__(self, app: ASGIApp, state: AppState, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.state = state
        self.routes = routes  # the app's own routes: labels for requests refused before routing
        self.keys = [k.encode() for k in state.settings.server.api_keys]
        self.limit = state.settings.server.max_body_bytes
        self.ui_tokens = UITokens()

    def _header_key_ok(self, headers: dict[bytes, bytes]) -> bool:
        given: list[bytes] = []
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given.append(auth[7:].strip())
        if b"x-api-key" in headers:
            given.append(headers[b"x-api-key"].strip())
        return any(hmac.compare_digest(g, k) for g in given for k in self.keys)

    def _check(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[APIError | None, str | None]:
        """``(refusal, ui_redirect)``: a 401, or the page's URL without its key (after a key was exchanged)."""
        path = scope.get("path", "")
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        url_key = next((v for k, v in query if k == "api_key"), None)
        if path == "/health" or path.startswith("/ui/static/"):
            return None, None  # the readiness probe and the page's static code: public, no data
        if url_key is not None and path != "/ui":
            return _unauthorised(
                "an API key in the URL is accepted only by /ui; send 'Authorization: Bearer KEY'"
            ), None
        if not self.keys:
            return None, None
        if path == "/ui" and url_key is not None:
            if not any(hmac.compare_digest(url_key.encode(), k) for k in self.keys):
                return _unauthorised(), None
            rest = urlencode([(k, v) for k, v in query if k != "api_key"])
            return None, "/ui" + (f"?{rest}" if rest else "")
        if self._header_key_ok(headers):
            return None, None
        token = _cookie(headers)
        if token is not None and self.ui_tokens.valid(token):
            return None, None
        return _unauthorised(), None

    async def _redirect_with_cookie(self, send: Send, location: str) -> None:
        token = self.ui_tokens.issue()
        cookie = f"{COOKIE}={token}; Max-Age={int(UI_TOKEN_TTL_S)}; Path=/; HttpOnly; SameSite=Strict"
        headers = [(b"location", location.encode()), (b"set-cookie", cookie.encode()), (b"content-length", b"0")]
        headers.append((b"cache-control", b"no-store"))
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500, "started": False}

        async def counting_send(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                status["code"], status["started"] = msg["status"], True
            await send(msg)

        try:
            await self._serve(scope, receive, counting_send)
        except Exception as e:  # noqa: BLE001 - nothing escapes to uvicorn ("Exception in ASGI application")
            _log.error("internal error", exc_info=e, extra={"fields": {"path": scope.get("path"), "status": 500}})
            if not status["started"]:
                await send_error(counting_send, APIError(500, "internal server error (logged on the server)", SERVER))
        finally:
            self.state.metrics.requests.labels(self._label(scope), str(status["code"])).inc()

    def _label(self, scope: Scope) -> str:
        """The matched route's path template (``/v1/runs/{run_id}``): bounded label values, whatever the URL."""
        route = scope.get("route")
        if route is None:  # refused before routing (401, 413): match it the way the router would
            route = next((r for r in self.routes if r.matches(dict(scope))[0] is not Match.NONE), None)
        return str(getattr(route, "path", None) or "other")

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        err, redirect = self._check(scope, headers)
        if err is None and redirect is None:
            cl = headers.get(b"content-length")
            if cl is not None and cl.isdigit() and int(cl) > self.limit:
                err = BodyTooLarge(self.limit)
        if err is not None:
            errors.log_error(None, err, scope=dict(scope))
            await send_error(send, err)
            return
        if redirect is not None:
            await self._redirect_with_cookie(send, redirect)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return msg

        await self.app(scope, limited_receive, send)
