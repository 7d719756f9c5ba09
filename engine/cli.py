"""``outcore``: one command with subcommands. Each subcommand lives in its own module with ``register()``.

Errors that a user can act on (a missing model, a bad file) are printed as one line, ``outcore: error: ...``,
with exit status 2; tracebacks are kept for real bugs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engine import __version__
from engine.errors import UserError
from engine.log import configure

# Modules that add subcommands: each defines register(subparsers) and sets args.func.
SUBCOMMAND_MODULES = (
    "models.cli",
    "engine.cli_run",
)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from engine.backends.base import BackendError
    from models.errors import ModelsError
    from wasm_sandbox import SandboxNotBuiltError

    return (UserError, ModelsError, BackendError, SandboxNotBuiltError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outcore",
        description="Recursive Language Models on local hardware.",
    )
    parser.add_argument("--version", action="version", version=f"outcore {__version__}")
    parser.add_argument("--log-level", default=None, help="JSON-lines log level on stderr (default: WARNING)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.log_level)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except _user_error_types() as e:
        print(f"outcore: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("outcore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
