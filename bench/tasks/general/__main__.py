"""``python -m bench.tasks.general``: list the families, or write one dev instance to files for ``outcore run``.

Why: a mechanism is best tried the way a user meets it, with ``outcore run --json -c context.txt "question"``; this
writes ``context.txt``, ``question.txt`` and ``gold.json`` of one instance and prints that command, and scores an
answer afterwards. It serves development only, so it builds dev instances only (test is never used to tune).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.tasks.general import DEFAULT_SIZES, general_names, get_general

SEED = "outcore-bench-v1"  # the runner's default seed: the same instances as `outcore bench --profile general`


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tasks.general", description=__doc__)
    p.add_argument("family", nargs="?", help="a g-... family; omitted: list the families with their tags")
    p.add_argument("--size", default=None, help="size label (default: the general profile's)")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--seed", default=SEED)
    p.add_argument("--out", type=Path, default=None, help="folder for context.txt, question.txt, gold.json")
    p.add_argument("--score", default=None, help="an answer to score against the instance (prints 0-1)")
    args = p.parse_args(argv)
    if args.family is None:
        for name in general_names():
            fam = get_general(name)
            print(f"{name:18s} sizes {','.join(fam.sizes):16s} {json.dumps(fam.tags)}")
        return 0
    if args.family not in general_names():
        print(f"unknown family {args.family!r}; choose from {', '.join(general_names())}", file=sys.stderr)
        return 2
    fam = get_general(args.family)
    size = args.size or DEFAULT_SIZES[args.family]
    if size not in fam.sizes:
        print(f"unknown size {size!r} for {args.family}; choose from {', '.join(fam.sizes)}", file=sys.stderr)
        return 2
    inst = fam.generate_split(size, args.index, args.seed, "dev")
    if args.score is not None:
        print(fam.score(inst, args.score).value)
        return 0
    out: Path = args.out or Path(f"/tmp/{inst.id.replace('/', '-')}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "context.txt").write_text(inst.context, encoding="utf-8")
    (out / "question.txt").write_text(inst.question + "\n", encoding="utf-8")
    (out / "gold.json").write_text(json.dumps({"id": inst.id, "gold": inst.gold}) + "\n", encoding="utf-8")
    print(f"{inst.id}: {len(inst.context):,} characters, {inst.input_tokens:,} tokens")
    print(f'outcore run --json -c {out / "context.txt"} "$(cat {out / "question.txt"})"')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
