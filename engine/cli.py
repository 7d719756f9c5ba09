"""``outcore``: one command with subcommands. Each subcommand lives in its own module with ``register()``.

Errors that a user can act on (a missing model, a bad file) are printed as one line, ``outcore: error: ...``,
with exit status 2; tracebacks are kept for real bugs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from engine import __version__
from engine.errors import UserError
from engine.log import configure

# Modules that add subcommands: each defines register(subparsers) and sets args.func. Faces built on the engine
# (``outcore serve``, ``outcore bench``) plug in through the ``outcore.commands`` entry-point group instead, so the
# engine never imports the server or the benchmarks.
SUBCOMMAND_MODULES = (
    "models.cli",
    "engine.cli_run",
)
PLUGIN_GROUP = "outcore.commands"


def _user_error_types() -> tuple[type[BaseException], ...]:
    from engine.backends.base import BackendError
    from engine.inputs import InvalidPromptError
    from models.errors import ModelsError
    from wasm_sandbox import SandboxNotBuiltError

    return (UserError, ModelsError, BackendError, SandboxNotBuiltError, InvalidPromptError)


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
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            ep.load().register(subparsers)
        except Exception as e:  # noqa: BLE001 - a broken face must not take `outcore run` down with it
            _register_broken(subparsers, ep.name, f"{type(e).__name__}: {e}")
    return parser


def _register_broken(subparsers: argparse._SubParsersAction, name: str, why: str) -> None:
    """A subcommand whose module failed to import: it says so when used, instead of breaking every command."""

    def fail(_args: argparse.Namespace) -> int:
        raise UserError(f"`outcore {name}` is not available: {why} (reinstall with `make setup`)")

    p = subparsers.add_parser(name, help=f"(unavailable: {why[:60]})")
    p.set_defaults(func=fail)


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
