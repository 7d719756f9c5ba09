"""``outcore serve``: the OpenAI-compatible HTTP endpoint on top of the engine.

Why this module stays tiny: the ``outcore`` CLI imports every plugin's ``register`` at start-up, so nothing heavy
(FastAPI, uvicorn, llama.cpp) is imported until ``serve`` actually runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve RLM and plain models over an OpenAI-compatible HTTP API (with a live call-tree page at /ui)",
        description=(
            "Serve the models named in a TOML config (default: the RLM pair 'rlm' = qwen2.5-coder-1.5b as root and "
            "worker, one loaded model) at /v1/chat/completions, /v1/completions and /v1/models. Loopback by "
            "default; with an API key every route except /health needs 'Authorization: Bearer KEY'."
        ),
    )
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8080; 0 picks a free one)")
    p.add_argument(
        "--api-key",
        action="append",
        default=None,
        dest="api_keys",
        metavar="KEY",
        help="require this key (repeat for several keys)",
    )
    p.add_argument("--api-key-file", type=Path, default=None, help="file with one API key per line")
    p.add_argument("--config", type=Path, default=None, help="TOML file naming the served models and limits")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from server.config import load_settings
    from server.main import serve

    settings = load_settings(
        args.config,
        host=args.host,
        port=args.port,
        api_keys=args.api_keys,
        api_key_file=args.api_key_file,
    )
    return serve(settings)
