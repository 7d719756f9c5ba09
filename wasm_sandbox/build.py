"""Build the sandbox guest: ``python -m wasm_sandbox.build [--force]`` (a setup step, idempotent).

componentize-py turns ``guest/outcore_guest.py`` + ``wit/world.wit`` into a WASI component (~11 s), then Wasmtime
compiles it (~5 s); both are cached under ``<cache root>/sandbox`` (``--cache-root``, default
``$OUTCORE_CACHE_DIR`` or the user cache dir: :func:`models.cache.cache_root`). Does nothing when the cached artifacts match the sources.
The logic lives in :mod:`wasm_sandbox.artifacts`; this module is the command.
"""

from __future__ import annotations

import argparse
import time

from .artifacts import (
    Artifacts,
    SandboxNotBuiltError,
    artifact_key,
    artifact_paths,
    build,
    cache_dir,
    compile_component,
    guest_hash,
)

__all__ = [
    "Artifacts",
    "SandboxNotBuiltError",
    "artifact_key",
    "artifact_paths",
    "build",
    "cache_dir",
    "compile_component",
    "guest_hash",
    "main",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wasm_sandbox.build", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--force", action="store_true", help="rebuild even when the cached artifacts match")
    p.add_argument("--cache-root", help="outcore's cache directory (default: $OUTCORE_CACHE_DIR or the user cache)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    arts = build(force=args.force, cache_root=args.cache_root)
    print(f"guest:    {arts.guest_wasm}\ncompiled: {arts.compiled}\n({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
