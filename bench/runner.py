"""Runs a profile: generate instances, run each method, append one JSON line per (instance, method), report.

Resumable: ``results.jsonl`` in the output folder is read first, and every (instance, method, root, worker)
already there is skipped, so an interrupted run continues where it stopped. Instances are generated one at a time
(a 10M-token context is built, used by every method, then dropped). A failing method records its error and a
score of 0 for that instance; the run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import methods as M
from bench import profiles, report, tokens
from bench.machine import describe as machine
from bench.tasks import Family, Instance, all_family_names, generate, get_family, instance_id
from engine.errors import UserError

_log = logging.getLogger("outcore.bench")
RESULTS = "results.jsonl"
RESULTS_DIR = Path(__file__).resolve().parent / "results"  # bench/results/ of the checkout


def _key(rec: dict[str, Any]) -> str:
    models = "-" if rec["method"] in ("oracle", "baseline") else f"{rec['root']}|{rec['worker']}"
    return f"{rec['id']}|{rec['method']}|{models}"


def load_results(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of a results file (a line cut by a crash is ignored)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _settings(args: argparse.Namespace) -> profiles.Profile:
    prof = profiles.get(args.profile, getattr(args, "split", None))
    if args.families:
        names = all_family_names()
        bad = [f for f in args.families if f not in names]
        if bad:
            raise UserError(f"unknown family {', '.join(bad)}; choose from {', '.join(names)}")
        split_fams = [f for f in args.families if hasattr(get_family(f), "generate_split")]
        if prof.split is not None and len(split_fams) < len(args.families):
            raise UserError(f"the {prof.name} profile runs split families only (g-...), not {args.families}")
        if prof.split is None and split_fams:
            raise UserError(f"{', '.join(split_fams)} need a split: use --profile general --split dev|test")
        prof.families = list(args.families)
        prof.sizes = {f: prof.sizes.get(f, [next(iter(get_family(f).sizes))]) for f in prof.families}
    if args.sizes:
        for fam in prof.families:
            known = get_family(fam).sizes
            chosen = [s for s in args.sizes if s in known]
            if not chosen:
                raise UserError(f"none of the sizes {', '.join(args.sizes)} exists for {fam} ({', '.join(known)})")
            prof.sizes[fam] = chosen
    if args.methods:
        bad = [m for m in args.methods if m not in M.METHODS]
        if bad:
            raise UserError(f"unknown method {', '.join(bad)}; choose from {', '.join(M.METHODS)}")
        prof.methods = list(args.methods)
        prof.method_families = {m: f for m, f in prof.method_families.items() if m in prof.methods}
    if args.n is not None:
        if args.n < 1:
            raise UserError("-n must be at least 1")
        prof.n = args.n
        prof.family_n = {}
    if args.root:
        prof.root = args.root
    if args.worker:
        prof.worker = args.worker
    if args.root_ctx:
        prof.root_ctx = args.root_ctx
        prof.base_ctx = None if prof.base_ctx is None else min(prof.base_ctx, args.root_ctx)
    if getattr(args, "base_ctx", None):
        prof.base_ctx = args.base_ctx
    if args.max_wall_s:
        prof.max_wall_s = args.max_wall_s
    return prof


def _jobs(prof: profiles.Profile) -> Iterator[tuple[str, str, int]]:
    for fam in prof.families:
        for size in prof.sizes[fam]:
            for i in range(prof.n_for(fam)):
                yield fam, size, i


def _record(
    inst: Instance, family: Family, method: str, out: M.Outcome, seconds: float, prof: profiles.Profile
) -> dict[str, Any]:
    score = family.score(inst, out.answer)
    total = sum(int(u.get("prompt_tokens", 0)) + int(u.get("completion_tokens", 0)) for u in out.usage.values())
    return {
        "id": inst.id,
        "family": inst.family,
        "size": inst.size,
        "index": inst.index,
        "method": method,
        "split": inst.split,
        "root": prof.root,
        "worker": prof.worker,
        "input_tokens": inst.input_tokens,
        "question": inst.question,
        "gold": inst.gold,
        "answer": out.answer,
        "score": round(score.value, 6),
        **{k: round(v, 6) for k, v in score.extra.items()},
        "seconds": round(seconds, 3),
        "tokens": total,
        "tokens_by_role": out.usage,
        "sub_calls": out.sub_calls,
        "depth": out.depth,
        "root_turns": out.root_turns,
        "finish_reason": out.finish_reason,
        "error": out.error,
        "context_tokens_used": out.context_tokens_used,
        "trace_path": out.trace_path,
    }


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="bench", unit="run", disable=not enabled, file=sys.stderr)


def run(prof: profiles.Profile, out_dir: Path, seed: str, progress: bool = True) -> list[dict[str, Any]]:
    """Run every pending (instance, method) of ``prof``; returns all records of the results file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / RESULTS
    done = {_key(r) for r in load_results(results_path)}
    plan = [(job, m) for job in _jobs(prof) for m in prof.methods if prof.runs(job[0], m, job[2])]

    def key(job: tuple[str, str, int], method: str) -> str:
        fam, size, i = job
        return _key({"id": instance_id(fam, size, i, prof.split), "method": method, "root": prof.root,
                     "worker": prof.worker})  # fmt: skip

    pending = [(job, m) for job, m in plan if key(job, m) not in done]
    models = M.Models(
        prof.root,
        prof.worker,
        {"n_ctx": prof.root_ctx, **({"n_gpu_layers": prof.n_gpu_layers} if prof.n_gpu_layers is not None else {})},
        {"n_ctx": prof.worker_ctx, **({"n_gpu_layers": prof.n_gpu_layers} if prof.n_gpu_layers is not None else {})},
    )
    method_objs = {m.name: m for m in M.build(prof.methods, models, out_dir / "traces", prof.rlm_limits, prof.base_ctx)}
    bar = _progress(len(plan), len(plan) - len(pending), progress)
    try:
        # load the models before the first instance, so a wrong --root/--worker is one clear error, not a
        # failure recorded for every instance
        if any(m in M.MODEL_METHODS and m != "ref-rlm" for _, m in pending):  # ref-rlm: its own server loads them
            models.root()
        if any(m in M.RLM_METHODS for _, m in pending):
            models.worker()
        with results_path.open("a", encoding="utf-8") as f:
            by_job: dict[tuple[str, str, int], list[str]] = {}
            for job, m in pending:
                by_job.setdefault(job, []).append(m)
            for job, names in by_job.items():
                fam, size, i = job
                family = get_family(fam)
                inst = generate(family, size, i, seed, prof.split)
                for name in names:
                    bar.set_postfix_str(f"{inst.id} {name}", refresh=True)
                    t0 = time.monotonic()
                    try:
                        outcome = method_objs[name].run(inst, family, prof.max_wall_s)
                    except (KeyboardInterrupt, UserError):
                        raise
                    except Exception as e:  # one failing run is a data point, not the end of the benchmark
                        _log.warning("%s %s failed: %s", inst.id, name, e)
                        outcome = M.Outcome("", "error", error=f"{type(e).__name__}: {e}")
                    rec = _record(inst, family, name, outcome, time.monotonic() - t0, prof)
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    f.flush()
                    bar.update(1)
    finally:
        bar.close()
        for obj in method_objs.values():
            close = getattr(obj, "close", None)
            if close is not None:
                close()
        models.close()
    return load_results(results_path)


def check_oracles(prof: profiles.Profile, records: list[dict[str, Any]]) -> list[str]:
    """Failures of the suite's own checks: an oracle below 100 % or a baseline above its ceiling."""
    problems = []
    for fam in prof.families:
        for method, lo, hi in (("oracle", 0.999999, 1.0), ("baseline", 0.0, profiles.BASELINE_CEILING[fam])):
            # a baseline at a high chance level (yes/no, one of two) sits above it by luck on a few instances:
            # judge those on 8 or more (tests/test_bench_general.py does, on both splits)
            if method == "baseline" and hi >= 0.3 and prof.n_for(fam) * len(prof.sizes[fam]) < 8:
                continue
            scores = [r["score"] for r in records if r["family"] == fam and r["method"] == method]
            if method in prof.methods and scores:
                mean = sum(scores) / len(scores)
                if not lo <= mean <= hi:
                    problems.append(f"{fam}: {method} scored {100 * mean:.1f} %")
    return problems


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    """While the bench runs, SIGTERM raises ``SystemExit(143)`` instead of ending the process at once, so the
    ``finally`` that closes the methods runs (the previous handler is put back after).

    Why: Python's default SIGTERM ends the process without unwinding, and a method's child process outlived it. Seen:
    a bench run killed with SIGTERM left the ``ref-rlm`` method's ``outcore serve`` generating on both cores.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(args: argparse.Namespace) -> int:
    try:
        prof = _settings(args)
    except ValueError as e:
        raise UserError(str(e)) from e
    prof.n_gpu_layers = args.n_gpu_layers
    out_dir: Path = args.out or RESULTS_DIR / prof.result_name
    meta = {
        "profile": prof.name,
        "split": prof.split,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "tokenizer": tokens.TOKENIZER,
        "machine": {**machine(), "n_gpu_layers": prof.n_gpu_layers},
        "models": {
            "root": prof.root,
            "worker": prof.worker,
            "root_ctx": prof.root_ctx,
            "worker_ctx": prof.worker_ctx,
            "base_ctx": prof.base_ctx or prof.root_ctx,
        },
        "limits": {"max_wall_s": prof.max_wall_s, **prof.rlm_limits},
        "families": {f: prof.sizes[f] for f in prof.families},
        "methods": prof.methods,
        "n": prof.n,
        "family_n": prof.family_n,
    }
    if not args.report_only:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "run.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        t0 = time.monotonic()
        with sigterm_exits():
            records = run(prof, out_dir, args.seed, progress=not args.no_progress)
        meta["wall_s"] = round(time.monotonic() - t0, 1)  # this invocation's time (a resumed run: the rest only)
        (out_dir / "run.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    else:
        records = load_results(out_dir / RESULTS)
        if not records:
            raise UserError(f"no results in {out_dir / RESULTS}")
        saved = out_dir / "run.json"
        if saved.exists():  # describe the run as it was made, not as this command line would make it
            meta = json.loads(saved.read_text(encoding="utf-8"))
            prof.root, prof.worker = meta["models"]["root"], meta["models"]["worker"]
            prof.split = meta.get("split")
    ours = [  # this split's records only: dev and test may share a folder, never a report
        r
        for r in records
        if (r["method"] in ("oracle", "baseline") or (r["root"], r["worker"]) == (prof.root, prof.worker))
        and r.get("split") == prof.split
    ]
    paths = report.write_all(out_dir, ours, meta)
    print(f"report: {paths['report']}")
    print(f"summary: {paths['summary']}")
    if args.out is None:  # the default run of a profile: its summary is what bench/results/<profile>.json holds
        shutil.copyfile(paths["summary"], RESULTS_DIR / f"{prof.result_name}.json")
        print(f"summary: {RESULTS_DIR / f'{prof.result_name}.json'}")
    for p in paths["plots"]:
        print(f"plot: {p}")
    problems = check_oracles(prof, ours) if prof.check_oracles else []
    for p in problems:
        print(f"outcore bench: check failed: {p}", file=sys.stderr)
    return 1 if problems else 0
