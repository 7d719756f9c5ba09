"""outcore's cache root: the one directory under which everything it caches lives.

Models, prefix KV states, traces, the demo document and the benchmark data (through their own modules) and the
sandbox's compiled guest (:mod:`wasm_sandbox.artifacts`) all default to a folder below this root, so one variable
moves them all. It lives here, in a module with no other job, because both leaves need it: ``wasm_sandbox``
imports it from ``models`` (a leaf may use the other leaf; neither imports ``engine``, and ``models`` imports
nothing of ``wasm_sandbox``, so the graph stays acyclic).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_CACHE_DIR = "OUTCORE_CACHE_DIR"


def cache_root() -> Path:
    """``$OUTCORE_CACHE_DIR``, else the platform's user cache dir (``~/.cache/outcore`` on Linux)."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("outcore"))
