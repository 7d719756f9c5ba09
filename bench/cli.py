"""``outcore bench``: the offline long-context benchmark suite (see :mod:`bench.runner`).

Registered through the ``outcore.commands`` entry-point group, so the engine never imports the benchmarks. The
heavy imports (tokenizer, models, matplotlib) happen only when the command runs, which keeps ``outcore --help`` fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

PROFILES = ("smoke", "quick", "ablate", "full", "general")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help="run the offline long-context benchmark suite (niah, aggregate, pairs, multihop, codeqa; general)",
        description=(
            "Generate the benchmark instances from pinned registry data, run each method on them and write "
            "per-instance JSON lines, report.md, summary.json and PNG plots to --out. Finished instances are "
            "not redone when the same --out is used again. 'outcore bench compare DIR [DIR ...]' puts result folders "
            "side by side (one Markdown table and one PNG, written to --out or the current folder)."
        ),
    )
    p.add_argument(
        "command",
        nargs="*",
        metavar="compare DIR",
        help="compare DIR [DIR ...]: a table and a plot across result folders",
    )
    p.add_argument("--profile", choices=PROFILES, default="quick", help="preset of families, sizes, methods, n")
    p.add_argument(
        "--families",
        type=_csv,
        default=None,
        help="comma list: niah,aggregate,pairs,multihop,codeqa or g-... (general)",
    )
    p.add_argument(
        "--split",
        choices=("dev", "test"),
        default=None,
        help="general profile: dev (default; tune here) or test (report only, never tune on it)",
    )
    p.add_argument("--sizes", type=_csv, default=None, help="comma list of size labels (e.g. 8k,32k,10p,40k)")
    p.add_argument(
        "--methods",
        type=_csv,
        default=None,
        help="comma list: base,base-4k,rlm,rlm-no-sub,rlm-code,summary,ref-rlm,oracle,baseline",
    )
    p.add_argument("-n", type=int, default=None, help="instances per family and size")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: bench/results/<profile>)")
    p.add_argument("--root", default=None, help="root model: catalog name, .gguf path or openai:URL")
    p.add_argument("--worker", default=None, help="worker model: catalog name, .gguf path or openai:URL")
    p.add_argument("--root-ctx", type=int, default=None, help="context tokens of the root model")
    p.add_argument(
        "--base-ctx", type=int, default=None, help="context tokens base/summary read at once (default: the profile's)"
    )
    p.add_argument("--n-gpu-layers", type=int, default=None, help="layers offloaded to a GPU (-1: all)")
    p.add_argument("--max-wall-s", type=float, default=None, help="wall-clock limit per instance and method")
    p.add_argument("--seed", default="outcore-bench-v1", help="string every instance is seeded from")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report-only", action="store_true", help="rewrite report.md, summary.json and plots only")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from engine.extras import require

    require("bench", "outcore bench")  # matplotlib, bpe-openai and the demo text are not runtime dependencies
    if getattr(args, "command", None):
        return _compare(args)
    from bench.runner import main

    return main(args)


def _compare(args: argparse.Namespace) -> int:
    from bench.compare import compare
    from engine.errors import UserError

    if args.command[0] != "compare":
        raise UserError(f"unknown bench command {args.command[0]!r}; did you mean 'outcore bench compare DIR ...'?")
    paths = compare([Path(d) for d in args.command[1:]], args.out or Path.cwd())
    for what, p in paths.items():
        print(f"{what}: {p}")
    return 0
