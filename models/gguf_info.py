"""Read a GGUF file's header: enough to register a model without loading it.

Only the key/value metadata and the tensor table are read (arrays such as the vocabulary are skipped), so this
takes milliseconds even for a 30 GB file. Written by hand because the header is small and simple, and a clear
error on a file that is not GGUF (or is cut short) matters more here than full coverage of the format.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from models.errors import NotGGUFError

MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 64 << 20
_MAX_COUNT = 1 << 32


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    version: int
    architecture: str
    name: str | None
    context_length: int | None
    chat_template: str | None
    parameter_count: int
    tensor_count: int
    metadata: dict[str, Any] = field(repr=False)  # scalars and strings; arrays as "<array of N>"


class _Reader:
    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f = f
        self.path = path

    def take(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise NotGGUFError(f"{self.path}: GGUF header is truncated (file cut short?)")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > _MAX_STRING:
            raise NotGGUFError(f"{self.path}: corrupt GGUF header (string of {n} bytes)")
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            if count > _MAX_COUNT:
                raise NotGGUFError(f"{self.path}: corrupt GGUF header (array of {count} items)")
            if etype in _SCALARS:
                self.f.seek(struct.calcsize(_SCALARS[etype]) * count, io.SEEK_CUR)
            elif etype == _STRING:
                for _ in range(count):
                    self.f.seek(self.unpack("<Q"), io.SEEK_CUR)
            else:
                for _ in range(count):
                    self.value(etype)
            return f"<array of {count}>"
        raise NotGGUFError(f"{self.path}: corrupt GGUF header (unknown value type {vtype})")


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def read_gguf_info(path: Path | str) -> GGUFInfo:
    """Parse the header of ``path``; raises NotGGUFError for anything that is not a readable GGUF file."""
    path = Path(path)
    try:
        f = open(path, "rb", buffering=1 << 16)
    except FileNotFoundError:
        raise NotGGUFError(f"{path}: no such file") from None
    except OSError as e:
        raise NotGGUFError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        r = _Reader(f, path)
        magic = f.read(4)
        if magic != MAGIC:
            raise NotGGUFError(f"{path}: not a GGUF model file (starts with {magic!r}, expected b'GGUF')")
        version = r.unpack("<I")
        if version not in (1, 2, 3):
            raise NotGGUFError(f"{path}: unsupported GGUF version {version}")
        count_fmt = "<I" if version == 1 else "<Q"
        n_tensors, n_kv = r.unpack(count_fmt), r.unpack(count_fmt)
        if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
            raise NotGGUFError(f"{path}: corrupt GGUF header")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            meta[key] = r.value(r.unpack("<I"))
        params = 0
        for _ in range(n_tensors):
            r.string()
            n_dims = r.unpack("<I")
            if n_dims > 8:
                raise NotGGUFError(f"{path}: corrupt GGUF tensor table")
            dims = struct.unpack(f"<{n_dims}Q", r.take(8 * n_dims))
            r.take(12)  # tensor type (u32) and data offset (u64)
            params += math.prod(dims)
    arch = str(meta.get("general.architecture", "unknown"))
    ctx = meta.get(f"{arch}.context_length")
    template = meta.get("tokenizer.chat_template")
    return GGUFInfo(
        path=path,
        version=version,
        architecture=arch,
        name=meta.get("general.name"),
        context_length=int(ctx) if isinstance(ctx, int) else None,
        chat_template=template if isinstance(template, str) else None,
        parameter_count=params,
        tensor_count=n_tensors,
        metadata=meta,
    )
