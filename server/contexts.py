"""Uploaded contexts: a large corpus sent once (``POST /v1/contexts`` or the Files API) and referenced by id.

Why files on disk: a 40 MB corpus should not live in the server's heap or be re-sent with every question. The upload
is streamed to a file while its UTF-8 is checked incrementally (a binary upload is refused with 400 before any model
runs); a request naming the id passes the file's path to the engine, which maps it read-only into the sandbox.
"""

from __future__ import annotations

import codecs
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.errors import UNAVAILABLE, APIError, bad_request

CONTEXT_ID = re.compile(r"^(ctx|file)-[0-9a-f]{24}$")


@dataclass(frozen=True)
class StoredContext:
    id: str
    path: Path
    bytes: int
    chars: int
    filename: str
    purpose: str
    created: int

    def as_context(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "outcore.context",
            "bytes": self.bytes,
            "chars": self.chars,
            "filename": self.filename,
            "created": self.created,
        }

    def as_file(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


class ContextStore:
    def __init__(self, directory: Path | None, max_contexts: int, max_chars: int) -> None:
        self._owned = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix="outcore-contexts-")) if directory is None else Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_contexts = max_contexts
        self.max_chars = max_chars
        self._items: OrderedDict[str, StoredContext] = OrderedDict()
        self._lock = threading.Lock()

    async def save(
        self, chunks: AsyncIterator[bytes], *, prefix: str = "ctx", filename: str = "", purpose: str = "context"
    ) -> StoredContext:
        cid = f"{prefix}-{uuid.uuid4().hex[:24]}"
        path = self.dir / f"{cid}.txt"
        decoder = codecs.getincrementaldecoder("utf-8")()
        n_bytes = n_chars = 0
        ok = False
        try:
            with open(path, "wb") as fh:
                async for chunk in chunks:
                    if not chunk:
                        continue
                    try:
                        n_chars += len(decoder.decode(chunk))
                    except UnicodeDecodeError as e:
                        raise bad_request(
                            f"the context is not UTF-8 text (invalid byte at offset {n_bytes + e.start}); "
                            "send text, not a binary file",
                            "file" if prefix == "file" else None,
                        ) from None
                    n_bytes += len(chunk)
                    if n_chars > self.max_chars:
                        raise bad_request(
                            f"the context is over the configured maximum of {self.max_chars:,} characters",
                            code="context_too_large",
                        )
                    fh.write(chunk)
            try:
                n_chars += len(decoder.decode(b"", final=True))
            except UnicodeDecodeError:
                raise bad_request("the context is not UTF-8 text (it ends inside a character)") from None
            if n_bytes == 0:
                raise bad_request("the context is empty")
            ok = True
        except OSError as e:  # a full disk (ENOSPC), a quota, a read-only data_dir: the server's side, said plainly
            raise APIError(
                503, f"the server could not store the context: {e.strerror or e}", UNAVAILABLE, code="storage_error"
            ) from None
        finally:
            if not ok:
                path.unlink(missing_ok=True)
        item = StoredContext(cid, path, n_bytes, n_chars, filename or cid, purpose, int(time.time()))
        with self._lock:
            self._items[cid] = item
            while len(self._items) > self.max_contexts:
                _, old = self._items.popitem(last=False)
                old.path.unlink(missing_ok=True)
        return item

    def get(self, cid: str) -> StoredContext | None:
        with self._lock:
            return self._items.get(cid)

    def items(self) -> list[StoredContext]:
        with self._lock:
            return list(self._items.values())

    def delete(self, cid: str) -> bool:
        with self._lock:
            item = self._items.pop(cid, None)
        if item is None:
            return False
        item.path.unlink(missing_ok=True)
        return True

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.dir, ignore_errors=True)
