"""The live page (``/ui``), its static code, and the health, model and metrics routes.

Why together: each is a read-only view of the running server with no request body; the page's auth (a key in its
URL exchanged for a cookie) is done by :mod:`server.guard` before these handlers run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from server.api import app_state
from server.errors import NOT_FOUND, UNAVAILABLE, APIError
from server.metrics import CONTENT_TYPE
from server.registry import Registry, RLMModel

STATIC = Path(__file__).resolve().parents[1] / "static"
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"
router = APIRouter()


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    reg = app_state(request).require_ready()
    sick = [name for name, m in reg.models.items() if not m.healthy()]
    if sick:
        raise APIError(503, f"unhealthy model(s): {', '.join(sick)}", UNAVAILABLE, code=503)
    return JSONResponse({"status": "ok"})


@router.get("/v1/models")
async def list_models(request: Request) -> JSONResponse:
    reg = app_state(request).require_ready()
    return JSONResponse({"object": "list", "data": [_model_card(reg, n) for n in reg.models]})


@router.get("/v1/models/{name:path}")
async def get_model(name: str, request: Request) -> JSONResponse:
    reg = app_state(request).require_ready()
    if name not in reg.models:
        raise APIError(404, f"The model '{name}' does not exist", NOT_FOUND, param="model", code="model_not_found")
    return JSONResponse(_model_card(reg, name, detail=True))


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(app_state(request).metrics.render(), media_type=CONTENT_TYPE)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui")


@router.get("/ui")
async def ui() -> FileResponse:
    # the page shows untrusted text (questions, answers, model output) as text; the CSP is the second fence
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
    return FileResponse(STATIC / "index.html", headers=headers)


def _model_card(reg: Registry, name: str, detail: bool = False) -> dict[str, Any]:
    m = reg.models[name]
    card: dict[str, Any] = {"id": name, "object": "model", "created": reg.created, "owned_by": "outcore"}
    meta = m.meta()
    if detail:
        backends = [m.rlm.root, m.rlm.worker] if isinstance(m, RLMModel) else [m.backend]
        stats = {}
        for b in backends:
            st = getattr(b, "stats", None)
            if st is not None:
                stats[b.info.name] = {k: v for k, v in vars(st).items() if isinstance(v, (int, float))}
        meta["backend_stats"] = stats
    card["outcore"] = meta
    return card
