"""Concurrent RLM runs on one loaded worker: does cross-run batching share decode steps, and how fast is cancel?

The workload of issue 8: 1, 2, 4 and 8 concurrent ``RLM.completion`` calls on one ``RLM`` (scripted roots, the
real Wasm sandbox, the real worker model). Each run's one cell makes 16 single ``llm_query`` calls one after
another, as roots usually do, with ~100-token prompts and answers of at most 32 tokens, so only cross-run batching
can share decode steps. Reported for each N, all in one run:

* total sub-calls/s and per-run latency p50/p95 of the N concurrent runs;
* the same N runs one after another (``sequential``);
* the floor: the same prompts sent as 16 rounds of one ``batch`` call of width N (perfect cross-run batching).

Also measured: cancel latency (from ``CancelToken.cancel()`` to ``completion()`` returning) during a root prefill,
a batched sub-call and a cell, and the root's first turn with and without its system prompt's KV cached
(``root_prefix_ratio``). Run on a quiet machine: ``.venv/bin/python -m bench.concurrency`` (writes
``bench/results/concurrency.json``); ``--quick`` is a smoke run on the small test model.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.machine import describe as machine
from engine import RLM, CancelToken
from engine.backends import load_backend
from engine.backends.base import Backend, SamplingParams
from engine.backends.scripted import ScriptedBackend

RESULTS = Path(__file__).resolve().parent / "results" / "concurrency.json"
NAMES = ["Ada", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemal", "Lena"]
ITEMS = ["lanterns", "crates", "ledgers", "clocks", "boats", "barrels", "maps", "bells"]


def prompts_for(run: int, calls: int, count_tokens: Any, target: int = 100) -> list[str]:
    """``calls`` distinct ~``target``-token prompts for one run (seeded: the same in every measurement)."""
    rng = random.Random(f"concurrency-{run}")
    out = []
    for i in range(calls):
        parts: list[str] = []
        while count_tokens(" ".join(parts)) < target - 20:
            parts.append(
                f"{rng.choice(NAMES)} counted {rng.randint(2, 90)} {rng.choice(ITEMS)} on day {rng.randint(1, 300)}."
            )
        out.append(
            f"Text: {' '.join(parts)}\nQuestion: how many {ITEMS[i % len(ITEMS)]} were counted in total? Answer with a number."
        )
    return out


def _script(prompts: list[str]) -> ScriptedBackend:
    cell = "answers = []\nfor p in PROMPTS:\n    answers.append(llm_query(p, max_tokens=32))\nFINAL(len(answers))"
    cell = cell.replace("PROMPTS", repr(prompts))
    return ScriptedBackend([f"Ask each prompt.\n```python\n{cell}\n```"], name="scripted-root")


class _PerRunRoot:
    """A root backend that routes each run (by owner) to its own scripted reply."""

    def __init__(self, scripts: dict[str, ScriptedBackend]) -> None:
        self.scripts = scripts
        self.info = next(iter(scripts.values())).info

    def chat(self, messages: Any, params: Any, **kw: Any) -> Any:
        return self.scripts[kw["owner"]].chat(messages, params, **kw)

    def count_tokens(self, text: str) -> int:
        return len(text) // 4

    def end_session(self, session: str) -> None:
        pass

    def close(self) -> None:
        pass


def _run_group(worker: Backend, n: int, calls: int, concurrent: bool) -> dict[str, Any]:
    runs = [prompts_for(i, calls, worker.count_tokens) for i in range(n)]
    root = _PerRunRoot({f"run-c{i}": _script(p) for i, p in enumerate(runs)})
    rlm = RLM(root, worker, trace=False, max_sub_calls=10_000, max_sub_calls_per_cell=10_000)  # type: ignore[arg-type]
    lat: list[float] = [0.0] * n
    answers: list[str] = [""] * n

    def one(i: int) -> None:
        t0 = time.monotonic()
        c = rlm.completion("The runs carry their text in their prompts.", "count", run_id=f"run-c{i}")
        lat[i] = time.monotonic() - t0
        answers[i] = c.answer if c.ok else f"{c.finish_reason}: {c.error}"

    t0 = time.monotonic()
    if concurrent:
        ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    else:
        for i in range(n):
            one(i)
    wall = time.monotonic() - t0
    assert all(a == str(calls) for a in answers), answers
    return {
        "wall_s": round(wall, 3),
        "sub_calls_per_s": round(n * calls / wall, 3),
        "latency_p50_s": round(statistics.median(lat), 3),
        "latency_p95_s": round(sorted(lat)[max(0, int(round(0.95 * n)) - 1)], 3),
    }


def _one_batch_floor(worker: Backend, n: int, calls: int) -> dict[str, Any]:
    runs = [prompts_for(i, calls, worker.count_tokens) for i in range(n)]
    params = SamplingParams(max_tokens=32)
    from engine import prompts as P

    t0 = time.monotonic()
    for k in range(calls):
        worker.batch(P.WORKER_SYSTEM, [runs[i][k] for i in range(n)], params)
    wall = time.monotonic() - t0
    return {"wall_s": round(wall, 3), "sub_calls_per_s": round(n * calls / wall, 3)}


def _cancel_latencies(worker: Backend, root: Backend | None, reps: int) -> dict[str, Any]:
    """Seconds from cancel() to completion() returning, in three places of a run."""
    out: dict[str, list[float]] = {"root_prefill": [], "batched_sub_call": [], "cell": []}
    long_prompts = [("Text: " + "the lantern was counted twice. " * 120 + "\nQuestion: how many?") for _ in range(8)]
    batch_cell = f"r = llm_query_batched({long_prompts!r}, max_tokens=32)\nFINAL(len(r))"
    loop_cell = (
        "for i in range(10**6):\n    llm_query('Text: item ' + str(i) + '. Question: which item?', max_tokens=8)"
    )
    cases: list[tuple[str, Any]] = [
        ("batched_sub_call", ScriptedBackend([f"```python\n{batch_cell}\n```"] * reps, name="r")),
        ("cell", ScriptedBackend([f"```python\n{loop_cell}\n```"] * reps, name="r")),
    ]
    if root is not None:
        cases.insert(0, ("root_prefill", root))
    for key, r in cases:
        rlm = RLM(r, worker, trace=False, max_sub_calls=10**6, max_sub_calls_per_cell=10**5, fallback_answer=False)
        for i in range(reps):
            tok = CancelToken()
            fired: list[float] = []

            def fire(tok: CancelToken = tok, fired: list[float] = fired) -> None:
                fired.append(time.monotonic())
                tok.cancel()

            timer = threading.Timer(1.5 + 0.1 * i, fire)
            timer.start()
            doc = "The keeper kept a brass compass in his iron box. " * 2000
            c = rlm.completion(doc, "What did the keeper keep in his iron box?", cancel=tok)
            end = time.monotonic()
            timer.cancel()
            if fired and c.finish_reason == "cancelled":
                out[key].append(end - fired[0])
    flat = sorted(x for v in out.values() for x in v)
    return {
        "per_stage_s": {k: [round(x, 3) for x in v] for k, v in out.items()},
        "cancel_p50_s": round(statistics.median(flat), 3) if flat else None,
        "cancel_p95_s": round(flat[max(0, int(round(0.95 * len(flat))) - 1)], 3) if flat else None,
        "n": len(flat),
    }


def _root_prefix(root_spec: str, n_ctx: int, threads: int | None) -> dict[str, Any]:
    """The root's first turn cold (system prompt computed) and cached (its KV shared / restored from disk)."""
    from engine.result import Completion

    doc = ("Filler about the harbor and its boats. " * 3000) + "The keeper kept a brass compass in his iron box. "
    q = "What did the keeper keep in his iron box?"
    first: dict[str, float] = {}

    def first_turn(c: Completion, events: list[tuple[str, dict[str, Any]]]) -> float:
        turn = next(f for e, f in events if e == "root_turn")
        return float(turn["latency_s"])

    with tempfile.TemporaryDirectory() as d:
        opts = {"n_ctx": n_ctx, "prefix_cache_dir": Path(d), **({"n_threads": threads} if threads else {})}
        root: Backend = load_backend(root_spec, **opts)
        for key in ("cold", "cached", "restored"):
            if key == "restored":  # a new process's backend: the prefix comes from disk
                root.close()
                root = load_backend(root_spec, **opts)
            rlm = RLM(root, ScriptedBackend(name="w"), trace=False, max_root_turns=1, fallback_answer=False)
            events: list[tuple[str, dict[str, Any]]] = []

            def sink(e: str, f: dict[str, Any], ev: list[tuple[str, dict[str, Any]]] = events) -> None:
                ev.append((e, dict(f)))

            c = rlm.completion(doc, q, on_event=sink)
            first[key] = first_turn(c, events)
        root.close()
    return {
        "root_first_turn_s_cold": round(first["cold"], 3),
        "root_first_turn_s_cached": round(first["cached"], 3),
        "root_first_turn_s_restored": round(first["restored"], 3),
        "root_prefix_ratio": round(first["cached"] / first["cold"], 3),
        "root_prefix_ratio_restored": round(first["restored"] / first["cold"], 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"n_ctx": args.n_ctx, "n_parallel": max(args.n_values)}
    if args.threads:
        opts["n_threads"] = args.threads
    worker = load_backend(args.worker, **opts)
    res: dict[str, Any] = {
        "machine": machine(),
        "worker": args.worker,
        "root": args.root,
        "workload": {"calls_per_run": args.calls, "prompt_tokens": 100, "max_tokens": 32, "n_values": args.n_values},
        "by_n": {},
    }
    _one_batch_floor(worker, 2, 1)  # warm-up: the worker's system prompt is computed once before timing
    for n in args.n_values:
        row = {
            "concurrent": _run_group(worker, n, args.calls, True),
            "sequential": _run_group(worker, n, args.calls, False),
            "one_batch": _one_batch_floor(worker, n, args.calls),
        }
        row["ratio_vs_sequential"] = round(row["concurrent"]["wall_s"] / row["sequential"]["wall_s"], 3)
        row["ratio_vs_one_batch"] = round(row["concurrent"]["wall_s"] / row["one_batch"]["wall_s"], 3)
        row["floor_vs_sequential"] = round(row["one_batch"]["wall_s"] / row["sequential"]["wall_s"], 3)
        res["by_n"][str(n)] = row
        print(json.dumps({"n": n, **row}), flush=True)
    stats = getattr(worker, "stats", None)
    if stats is not None:
        res["worker_stats"] = {k: getattr(stats, k) for k in ("decode_calls", "max_batch_seqs", "max_batch_groups")}
    four = res["by_n"].get("4")
    if four:
        res["ratio_4_vs_sequential"] = four["ratio_vs_sequential"]
        res["ratio_4_vs_one_batch"] = four["ratio_vs_one_batch"]
    root = (
        load_backend(args.root, n_ctx=args.n_ctx, **({"n_threads": args.threads} if args.threads else {}))
        if not args.quick
        else None
    )
    res["cancel"] = _cancel_latencies(worker, root, args.cancel_reps)
    res["cancel_p95_s"] = res["cancel"]["cancel_p95_s"]
    if root is not None:
        root.close()
    worker.close()
    res.update(_root_prefix(args.root, args.n_ctx, args.threads))
    res["targets"] = {
        "ratio_4_vs_one_batch <= 1.15": (res.get("ratio_4_vs_one_batch") or 99) <= 1.15,
        "cancel_p95_s < 1": (res["cancel_p95_s"] or 99) < 1.0,
        "root_prefix_ratio <= 0.40": res["root_prefix_ratio"] <= 0.40,
    }
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run on the small test model")
    ap.add_argument("--worker", default=None)
    ap.add_argument("--root", default=None)
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--n-ctx", type=int, default=8192)
    ap.add_argument("--cancel-reps", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    args.worker = args.worker or ("smollm2-135m" if args.quick else "qwen2.5-coder-0.5b")
    args.root = args.root or ("smollm2-135m" if args.quick else "qwen2.5-coder-1.5b")
    args.n_values = [1, 2] if args.quick else [1, 2, 4, 8]
    if args.quick:
        args.calls, args.cancel_reps = 4, 2
    res = run(args)
    out = args.out or (Path(tempfile.gettempdir()) / "concurrency-quick.json" if args.quick else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(
        json.dumps(
            {k: res[k] for k in res if k.startswith(("ratio", "cancel_p95", "root_first", "root_prefix", "targets"))},
            indent=2,
        )
    )
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
