"""The sandbox artifacts: build the guest component and the precompiled artifact, find them in the cache.

The command line is ``python -m wasm_sandbox.build`` (see build.py).

Two steps, both cached under ``<cache root>/sandbox``; the cache root is an argument, by default outcore's
(:func:`models.cache.cache_root`: ``$OUTCORE_CACHE_DIR`` or the user cache dir):

1. ``guest-<hash>.wasm``: componentize-py turns ``guest/outcore_guest.py`` + ``wit/world.wit`` into a WASI
   preview-2 component (~15 s). The hash covers the guest sources and the componentize-py version.
2. ``component-<key>.cwasm``: Wasmtime compiles that component to native code (~10 s) and serialises it. The key
   covers the guest hash, the wasmtime version, the engine configuration and the CPU architecture, so a new
   ``Sandbox`` only deserialises it (milliseconds).

Idempotent: when both artifacts match the sources it does nothing. Writes are atomic (temp file + rename), so
concurrent builds and readers never see a half-written artifact.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import wasmtime
import wasmtime.component

from models.cache import cache_root as default_cache_root

_LOG = logging.getLogger("outcore.sandbox.build")

PACKAGE_DIR = Path(__file__).resolve().parent
WIT_DIR = PACKAGE_DIR / "wit"
GUEST_DIR = PACKAGE_DIR / "guest"
GUEST_MODULE = "outcore_guest"
WORLD = "sandbox"

# Engine settings that change the compiled code; part of the artifact key.
ENGINE_SETTINGS: dict[str, object] = {
    "epoch_interruption": True,
    "cranelift_opt_level": "speed",
    "wasm_component_model": True,
}


class SandboxNotBuiltError(RuntimeError):
    """The guest component has not been built for these sources; run ``python -m wasm_sandbox.build``."""


def cache_dir(cache_root: str | os.PathLike[str] | None = None) -> Path:
    """``<cache_root>/sandbox``; the default root is outcore's (:func:`models.cache.cache_root`)."""
    return Path(cache_root or default_cache_root()).expanduser() / "sandbox"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def guest_hash() -> str:
    """Hash of everything that goes into the guest component."""
    h = hashlib.sha256()
    h.update(f"componentize-py={_version('componentize-py')}\n".encode())
    for path in sorted([*WIT_DIR.glob("*.wit"), *GUEST_DIR.glob("*.py")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def make_config() -> wasmtime.Config:
    cfg = wasmtime.Config()
    cfg.epoch_interruption = bool(ENGINE_SETTINGS["epoch_interruption"])
    cfg.cranelift_opt_level = str(ENGINE_SETTINGS["cranelift_opt_level"])
    cfg.wasm_component_model = bool(ENGINE_SETTINGS["wasm_component_model"])
    return cfg


def artifact_key(ghash: str) -> str:
    h = hashlib.sha256()
    settings = ",".join(f"{k}={v}" for k, v in sorted(ENGINE_SETTINGS.items()))
    h.update(f"{ghash}|wasmtime={_version('wasmtime')}|{settings}|{platform.machine()}|{sys.platform}".encode())
    return h.hexdigest()[:20]


@dataclass(frozen=True)
class Artifacts:
    guest_wasm: Path
    compiled: Path


def artifact_paths(cache_root: str | os.PathLike[str] | None = None) -> Artifacts:
    ghash = guest_hash()
    d = cache_dir(cache_root)
    return Artifacts(d / f"guest-{ghash}.wasm", d / f"component-{artifact_key(ghash)}.cwasm")


def _componentize_py() -> str:
    exe = Path(sys.executable).parent / "componentize-py"
    if exe.exists():
        return str(exe)
    found = shutil.which("componentize-py")
    if not found:
        raise SandboxNotBuiltError("componentize-py is not installed: pip install componentize-py==0.25.1")
    return found


def build_guest(out: Path) -> None:
    """componentize-py the guest into ``out`` with a scrubbed environment (nothing of ours leaks in)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_out = Path(tmp) / "guest.wasm"
        cmd = [
            _componentize_py(),
            "-q",
            "-d",
            str(WIT_DIR),
            "-w",
            WORLD,
            "componentize",
            "-p",
            str(GUEST_DIR),
            GUEST_MODULE,
            "-o",
            str(tmp_out),
        ]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "LANG": "C.UTF-8"}
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"componentize-py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        os.replace(tmp_out, out)


def compile_component(guest_wasm: Path, out: Path) -> None:
    engine = wasmtime.Engine(make_config())
    comp = wasmtime.component.Component.from_file(engine, str(guest_wasm))
    data = comp.serialize()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".component-", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(bytes(data))
    os.replace(tmp, out)


def _log(msg: str, **fields: object) -> None:
    _LOG.info(msg, extra={"fields": fields})


def build(force: bool = False, cache_root: str | os.PathLike[str] | None = None) -> Artifacts:
    """Build whatever is missing or stale; return the artifact paths."""
    arts = artifact_paths(cache_root)
    if force or not arts.guest_wasm.exists():
        t0 = time.monotonic()
        _log("building guest component", path=str(arts.guest_wasm))
        build_guest(arts.guest_wasm)
        _log("built guest component", seconds=round(time.monotonic() - t0, 2))
    if force or not arts.compiled.exists():
        t0 = time.monotonic()
        compile_component(arts.guest_wasm, arts.compiled)
        _log("compiled component", path=str(arts.compiled), seconds=round(time.monotonic() - t0, 2))
    return arts
