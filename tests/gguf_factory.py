"""Builders for test inputs: tiny but valid GGUF files and wheels that carry byte ranges of them."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path


def _s(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf_bytes(
    arch: str = "llama", ctx: int = 4096, template: str | None = "{{ messages }}", payload: int = 4096
) -> bytes:
    """A GGUF v3 file with a few metadata keys, one string array, two tensors (4x8 and 16) and ``payload`` bytes."""
    kvs = [
        _s("general.architecture") + struct.pack("<I", 8) + _s(arch),
        _s("general.name") + struct.pack("<I", 8) + _s("Tiny Test"),
        _s(f"{arch}.context_length") + struct.pack("<I", 4) + struct.pack("<I", ctx),
        _s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + _s("a") + _s("bb") + _s("ccc"),
    ]
    if template is not None:
        kvs.append(_s("tokenizer.chat_template") + struct.pack("<I", 8) + _s(template))
    tensors = [
        _s("w") + struct.pack("<I", 2) + struct.pack("<QQ", 4, 8) + struct.pack("<IQ", 0, 0),
        _s("b") + struct.pack("<I", 1) + struct.pack("<Q", 16) + struct.pack("<IQ", 0, 128),
    ]
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(tensors)
    return header + bytes(range(256)) * (payload // 256)


def write_wheel(directory: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """Write a minimal wheel that pip can download from a --find-links directory."""
    dist = package.replace("-", "_")
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path
