"""Uploaded contexts: ``/v1/contexts`` (raw body) and the OpenAI Files API shape of the same store, ``/v1/files``.

Why two shapes of one store: ``client.files.create(file=..., purpose=...)`` works unchanged, while ``curl
--data-binary @big.txt /v1/contexts`` streams a large document without multipart framing. Ids are checked by the
store (``ctx-``/``file-`` and a hex suffix), so a path in an id never reaches the file system.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.api import app_state
from server.errors import NOT_FOUND, APIError, bad_request

router = APIRouter()


def _missing(kind: str, cid: str) -> APIError:
    if kind == "file":
        return APIError(404, f"file {cid!r} does not exist", NOT_FOUND, param="file_id", code="file_not_found")
    return APIError(404, f"context {cid!r} does not exist", NOT_FOUND, code="context_not_found")


@router.post("/v1/contexts")
async def upload(request: Request) -> JSONResponse:
    state = app_state(request)
    state.require_ready()
    item = await state.contexts.save(request.stream(), filename=request.query_params.get("filename", ""))
    return JSONResponse(item.as_context())


@router.post("/v1/files")
async def upload_file(request: Request) -> JSONResponse:
    state = app_state(request)
    state.require_ready()
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("send the file as multipart/form-data with fields 'file' and 'purpose'", "file")
    try:
        form = await request.form(max_files=1, max_fields=8)
    except Exception as e:  # noqa: BLE001 - a malformed multipart body is the client's error
        raise bad_request(f"the multipart body could not be parsed: {e}", "file") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise bad_request("missing required field 'file'", "file")
    purpose = form.get("purpose")

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await upload.read(1 << 20):
            yield chunk

    try:
        item = await state.contexts.save(
            chunks(),
            prefix="file",
            filename=upload.filename or "",
            purpose=purpose if isinstance(purpose, str) else "context",
        )
    finally:
        await form.close()
    return JSONResponse(item.as_file())


@router.get("/v1/files")
async def files(request: Request) -> JSONResponse:
    return JSONResponse({"object": "list", "data": [c.as_file() for c in app_state(request).contexts.items()]})


@router.get("/v1/files/{cid}")
async def get_file(cid: str, request: Request) -> JSONResponse:
    item = app_state(request).contexts.get(cid)
    if item is None:
        raise _missing("file", cid)
    return JSONResponse(item.as_file())


@router.delete("/v1/files/{cid}")
async def delete_file(cid: str, request: Request) -> JSONResponse:
    if not app_state(request).contexts.delete(cid):
        raise _missing("file", cid)
    return JSONResponse({"id": cid, "object": "file", "deleted": True})


@router.get("/v1/contexts")
async def contexts(request: Request) -> JSONResponse:
    return JSONResponse({"object": "list", "data": [c.as_context() for c in app_state(request).contexts.items()]})


@router.get("/v1/contexts/{cid}")
async def get_context(cid: str, request: Request) -> JSONResponse:
    item = app_state(request).contexts.get(cid)
    if item is None:
        raise _missing("context", cid)
    return JSONResponse(item.as_context())


@router.delete("/v1/contexts/{cid}")
async def delete_context(cid: str, request: Request) -> JSONResponse:
    if not app_state(request).contexts.delete(cid):
        raise _missing("context", cid)
    return JSONResponse({"id": cid, "object": "outcore.context", "deleted": True})
