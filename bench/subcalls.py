"""Sub-call throughput: outcore's llama backend against no reuse and llama-cpp-python's high-level ``Llama``.

The workload of issue 3: Qwen2.5-Coder-0.5B, a ~1,500-token shared system prompt, 32 sub-calls over ~300-token
chunks, answers of at most 32 tokens, greedy. One run measures

(a) no reuse: every call prefilled from scratch (high-level ``Llama``, state reset before each call; a subset of
    the calls is timed — every call is the same work — and the per-call rate is reported);
(b) high-level ``Llama`` called sequentially (its implicit longest-prefix reuse);
(c) outcore with 1, 4 and 8 parallel sequences (fresh backend each, prefix computed inside the timing);
(d) an interleaved RLM pattern on one model: a root turn over ~1,000 tokens of history, then 8 sub-calls,
    5 times; high-level ``Llama`` vs outcore (root in its own session sequence);
(e) the first sub-call of a new process with and without the saved prefix (two child processes).

Run: ``.venv/bin/python -m bench.subcalls`` (writes ``bench/results/subcalls.json``); ``--quick`` for a smoke
run on the small test model (writes to ``--out`` or a temp file). Run it on a quiet machine: ratios are only
comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.machine import describe as machine
from engine.backends.base import Message, SamplingParams
from engine.backends.llama.model import safe_weight_buffers

RESULTS = Path(__file__).resolve().parent / "results" / "subcalls.json"
NAMES = ["Ada", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemal", "Lena"]
PLACES = ["harbor", "mill", "library", "orchard", "station", "market", "bridge", "school"]
VERBS = ["repaired", "counted", "painted", "measured", "visited", "cleaned", "inspected", "described"]
OBJECTS = ["the north gate", "a broken clock", "forty crates", "the old ledger", "two lanterns", "a red boat"]


@dataclass(frozen=True)
class Workload:
    model: str
    system: str
    prompts: list[str]
    root_system: str
    root_history: list[Message]
    max_tokens: int
    rounds: int
    per_round: int
    n_values: tuple[int, ...]
    a_calls: int


def _sentence(rng: random.Random) -> str:
    return (
        f"{rng.choice(NAMES)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} near the {rng.choice(PLACES)} "
        f"on day {rng.randint(1, 300)}."
    )


def _text(rng: random.Random, count_tokens: Any, target: int) -> str:
    parts: list[str] = []
    while True:
        parts.append(_sentence(rng))
        if len(parts) % 5 == 0 and count_tokens(" ".join(parts)) >= target:
            return " ".join(parts)


def make_workload(count_tokens: Any, quick: bool, model: str) -> Workload:
    rng = random.Random(20261123)
    sys_target, chunk_target, n_calls = (300, 100, 8) if quick else (1500, 300, 32)
    rules = (
        "You are a worker model inside a recursive language model. You receive one chunk of a long log of "
        "town maintenance records and one instruction. Follow the instruction using only the chunk. Answer in "
        "at most one line, with no explanation. If the chunk does not contain the answer, answer NONE.\n"
        "Reference records (for names and places, do not answer from them):\n"
    )
    system = rules + _text(rng, lambda t: count_tokens(rules + t), sys_target - count_tokens(rules))
    instruction = "Instruction: list every person named in the chunk, comma-separated.\n\nChunk:\n"
    prompts = [instruction + _text(rng, count_tokens, chunk_target) for _ in range(n_calls)]
    root_system = (
        "You are the root of a recursive language model. Write one short Python cell per turn; "
        "call llm_batch(prompts) to ask workers about chunks of the context."
    )
    history = [Message("user", "Question: who repaired the north gate most often? The context is a long log.")]
    hist_target = 250 if quick else 1000
    while sum(count_tokens(m.content) for m in history) < hist_target:
        history.append(Message("assistant", "```python\nres = llm_batch([c for c in chunks[:8]])\nprint(res)\n```"))
        history.append(Message("user", "Output: " + _text(rng, count_tokens, 120)))
    return Workload(
        model=model,
        system=system,
        prompts=prompts,
        root_system=root_system,
        root_history=history,
        max_tokens=8 if quick else 32,
        rounds=2 if quick else 5,
        per_round=4 if quick else 8,
        n_values=(1, 4) if quick else (1, 4, 8),
        a_calls=2 if quick else 6,
    )


# ---------------------------------------------------------------------------------------------- high-level Llama


class HighLevel:
    """llama-cpp-python's ``Llama`` fed the exact token ids outcore decodes, greedy, as in its own docs."""

    def __init__(self, path: Path, n_ctx: int, n_threads: int, n_batch: int, n_ubatch: int) -> None:
        from llama_cpp import Llama

        # outcore's context settings (n_ctx, n_batch, n_ubatch, threads, flash attention): both compute in the
        # same physical batches; only the KV layout (one sequence here) and the scheduling differ
        with safe_weight_buffers():  # as outcore loads its models
            self.llm = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_batch=n_batch,
                n_ubatch=n_ubatch,
                flash_attn=True,
                n_gpu_layers=-1,  # as outcore's default: every layer on a GPU when llama.cpp has one (none on a CPU)
                verbose=False,
            )

    def generate(self, tokens: list[int], max_tokens: int, reset_state: bool = False) -> list[int]:
        import llama_cpp

        if reset_state:
            self.llm.reset()  # n_tokens = 0: no prefix match, the whole prompt is evaluated again
        out: list[int] = []
        vocab = self.llm._model.vocab
        for tok in self.llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
            if llama_cpp.llama_vocab_is_eog(vocab, tok):
                out.append(tok)
                break
            out.append(tok)
            if len(out) >= max_tokens:
                break
        return out

    def text(self, tokens: list[int]) -> str:
        import llama_cpp

        vocab = self.llm._model.vocab
        keep = [t for t in tokens if not llama_cpp.llama_vocab_is_eog(vocab, t)]
        return self.llm.detokenize(keep).decode("utf-8", "replace")


def _rate(calls: int, seconds: float, tokens: int) -> dict[str, float]:
    return {
        "calls": calls,
        "seconds": round(seconds, 3),
        "calls_per_s": round(calls / seconds, 4),
        "tokens_per_s": round(tokens / seconds, 1),
    }


# ---------------------------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.backends.llama import LlamaBackend, LlamaConfig

    n_threads = args.threads or os.cpu_count() or 1
    base = dict(n_ctx=args.n_ctx, max_sessions=1, n_threads=n_threads, flash_attn=True, prefix_cache=False)
    probe = LlamaBackend(LlamaConfig(model=args.model, n_parallel=1, **base))
    n_batch, n_ubatch = probe.config.n_batch, min(probe.config.n_ubatch, probe.config.n_batch)
    path = probe.model_path
    wl = make_workload(probe.count_tokens, args.quick, args.model)
    toks = [probe.batch_prompt_tokens(wl.system, p) for p in wl.prompts]
    sys_tokens = len(probe._system_prefix(wl.system))
    probe.close()
    params = SamplingParams(max_tokens=wl.max_tokens)
    prompt_total = sum(len(t) for t in toks)
    context_settings = {
        "n_ctx": args.n_ctx,
        "n_batch": n_batch,
        "n_ubatch": n_ubatch,
        "n_threads": n_threads,
        "n_threads_batch": n_threads,
        "flash_attn": True,
    }
    res: dict[str, Any] = {
        "workload": {
            "model": args.model,
            "model_file": path.name,
            "system_prompt_tokens": sys_tokens,
            "sub_calls": len(toks),
            "mean_prompt_tokens": round(prompt_total / len(toks), 1),
            "max_tokens": wl.max_tokens,
            "greedy": True,
            "n_threads": n_threads,
            "n_ctx": args.n_ctx,
            "flash_attn": True,
            # (b) and outcore run with the same context settings: the comparison is about KV reuse only
            "b_llama": {**context_settings, "sequences": 1},
            "outcore": {
                **context_settings,
                "kv_unified": True,
                "mix_prefill": True,
                "prefix_cache": False,
                "max_sessions": 1,
            },
        }
    }

    def say(*a: object) -> None:
        print(*a, file=sys.stderr, flush=True)

    # (a) + (b): high-level Llama
    hl = HighLevel(path, n_ctx=args.n_ctx, n_threads=n_threads, n_batch=n_batch, n_ubatch=n_ubatch)
    t0 = time.perf_counter()
    gen_a = 0
    for t in toks[: wl.a_calls]:
        gen_a += len(hl.generate(t, wl.max_tokens, reset_state=True))
    ta = time.perf_counter() - t0
    res["a_no_reuse"] = _rate(wl.a_calls, ta, sum(len(t) for t in toks[: wl.a_calls]) + gen_a)
    res["a_no_reuse"]["note"] = f"{wl.a_calls} of {len(toks)} calls timed (identical work per call)"
    say("a", res["a_no_reuse"])

    hl.llm.reset()  # start (b) from an empty cache
    t0 = time.perf_counter()
    b_out = [hl.generate(t, wl.max_tokens) for t in toks]
    tb = time.perf_counter() - t0
    b_texts = [hl.text(o) for o in b_out]
    res["b_llama_sequential"] = _rate(len(toks), tb, prompt_total + sum(len(o) for o in b_out))
    say("b", res["b_llama_sequential"])

    # (d) high-level: root turn then sub-calls on the same Llama
    root_msgs = [Message("system", wl.root_system), *wl.root_history]

    def root_rounds_highlevel() -> tuple[float, list[str]]:
        msgs = list(root_msgs)
        texts = []
        t0 = time.perf_counter()
        for r in range(wl.rounds):
            rt = tok_be.prompt_tokens(msgs)
            reply = hl.text(hl.generate(rt, wl.max_tokens))
            texts.append(reply)
            chunk = toks[(r * wl.per_round) % len(toks) :][: wl.per_round]
            for t in chunk:
                hl.generate(t, wl.max_tokens)
            msgs += [Message("assistant", reply), Message("user", f"Output: round {r} done")]
        return time.perf_counter() - t0, texts

    # (c) outcore with N parallel sequences
    res["c_outcore"] = {}
    identical: dict[str, bool] = {}
    for n in wl.n_values:
        be = LlamaBackend(LlamaConfig(model=args.model, n_parallel=n, **base))
        t0 = time.perf_counter()
        gens = be.batch(wl.system, wl.prompts, params)
        tc = time.perf_counter() - t0
        assert all(g.ok for g in gens), [g.error for g in gens if not g.ok]
        res["c_outcore"][str(n)] = _rate(len(toks), tc, prompt_total + sum(g.completion_tokens for g in gens))
        res["c_outcore"][str(n)]["cached_tokens_total"] = sum(g.cached_tokens for g in gens)
        res["c_outcore"][str(n)]["max_batch_seqs"] = be.stats.max_batch_seqs
        same = [g.text == bt for g, bt in zip(gens, b_texts, strict=True)]
        identical[str(n)] = all(same)
        res["c_outcore"][str(n)]["greedy_identical_to_b"] = f"{sum(same)}/{len(same)}"
        say("c", n, res["c_outcore"][str(n)])
        be.close()
    best_n = max(res["c_outcore"], key=lambda k: res["c_outcore"][k]["calls_per_s"])

    # (d) interleaved RLM pattern
    tok_be = LlamaBackend(LlamaConfig(model=args.model, n_parallel=1, **base))
    td_b, _ = root_rounds_highlevel()
    tok_be.close()
    hl.llm.close()
    be = LlamaBackend(LlamaConfig(model=args.model, n_parallel=int(best_n), **base))
    msgs = list(root_msgs)
    t0 = time.perf_counter()
    for r in range(wl.rounds):
        reply = be.chat(msgs, params, session="root").text
        chunk = wl.prompts[(r * wl.per_round) % len(toks) :][: wl.per_round]
        assert all(g.ok for g in be.batch(wl.system, chunk, params))
        msgs += [Message("assistant", reply), Message("user", f"Output: round {r} done")]
    td_o = time.perf_counter() - t0
    be.close()
    res["d_interleaved"] = {
        "rounds": wl.rounds,
        "sub_calls_per_round": wl.per_round,
        "root_history_tokens_approx": sum(len(m.content) for m in wl.root_history) // 4,
        "llama_seconds": round(td_b, 3),
        "outcore_seconds": round(td_o, 3),
        "outcore_n_parallel": int(best_n),
    }
    say("d", res["d_interleaved"])

    # (e) first sub-call in a new process, with and without the saved prefix
    with tempfile.TemporaryDirectory() as cache:
        cold = _child(args, cache)
        warm = _child(args, cache)
    res["e_first_call"] = {
        "cold": cold,
        "restored": warm,
        "note": "first_call_s = prefix_s (compute or restore the shared system prompt) + the call's own suffix "
        "prefill and generation (suffix_and_generation_s), which are the same work with or without the saved prefix",
    }
    say("e", res["e_first_call"])

    rb = res["b_llama_sequential"]["calls_per_s"]
    ra = res["a_no_reuse"]["calls_per_s"]
    rc = res["c_outcore"][best_n]["calls_per_s"]
    res.update(
        {
            "ratio_c_vs_a": round(rc / ra, 3),
            "ratio_c_vs_b": round(rc / rb, 3),
            "best_n": int(best_n),
            "ratio_d": round(td_b / td_o, 3),
            "restore_fraction": round(warm["first_call_s"] / cold["first_call_s"], 4),
            "restore_fraction_prefix_only": round(warm["prefix_s"] / cold["prefix_s"], 4),
            # the fraction if restoring cost nothing: the floor set by the call's own suffix prefill + generation
            "restore_fraction_floor": round((cold["first_call_s"] - cold["prefix_s"]) / cold["first_call_s"], 4),
            "greedy_identical": all(identical.values()),
            "greedy_identical_by_n": identical,
        }
    )
    res["targets"] = {
        "c_vs_a>=4": res["ratio_c_vs_a"] >= 4,
        "c_vs_b>=1.2": res["ratio_c_vs_b"] >= 1.2,
        "d>=1.6": res["ratio_d"] >= 1.6,
        "restore<=0.15": res["restore_fraction"] <= 0.15,
        "greedy_identical": res["greedy_identical"],
    }
    res["machine"] = machine()
    return res


def _child(args: argparse.Namespace, cache: str) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "bench.subcalls",
        "--child-first-call",
        cache,
        "--model",
        args.model,
        "--n-ctx",
        str(args.n_ctx),
    ]
    if args.quick:
        cmd.append("--quick")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_first_call(args: argparse.Namespace) -> None:
    from engine.backends.llama import LlamaBackend, LlamaConfig

    n_threads = args.threads or os.cpu_count() or 1
    t0 = time.perf_counter()
    be = LlamaBackend(
        LlamaConfig(
            model=args.model,
            n_ctx=args.n_ctx,
            n_parallel=8,
            max_sessions=1,
            n_threads=n_threads,
            flash_attn=True,
            prefix_cache_dir=Path(args.child_first_call),
        )
    )
    t_load = time.perf_counter() - t0
    wl = make_workload(be.count_tokens, args.quick, args.model)
    be._system_prefix(wl.system)  # tokenizing the template is not what is measured
    t0 = time.perf_counter()
    g = be.batch(wl.system, [wl.prompts[0]], SamplingParams(max_tokens=wl.max_tokens))[0]
    t_first = time.perf_counter() - t0
    st = be.stats
    # the part of the first call spent getting the shared prefix into KV (restore or compute)
    pre = st.prefix_seconds
    be.close()
    print(
        json.dumps(
            {
                "load_s": round(t_load, 3),
                "first_call_s": round(t_first, 3),
                "prefix_s": round(pre, 4),
                "suffix_and_generation_s": round(t_first - pre, 3),
                "suffix_tokens_decoded": st.prompt_tokens_decoded,
                "generated_tokens": st.generated_tokens,
                "cached_tokens": g.cached_tokens,
                "restored_tokens": st.prefix_tokens_restored,
                "decoded_prefix_tokens": st.prefix_tokens_decoded,
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run on the test model")
    ap.add_argument("--model", default=None, help="catalog name or .gguf path")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--n-ctx", type=int, default=8192)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child-first-call", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.model is None:
        args.model = "smollm2-135m" if args.quick else "qwen2.5-coder-0.5b"
    if args.child_first_call:
        child_first_call(args)
        return 0
    res = run(args)
    out = args.out or (Path(tempfile.gettempdir()) / "subcalls-quick.json" if args.quick else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: res[k]
                for k in ("ratio_c_vs_a", "ratio_c_vs_b", "ratio_d", "restore_fraction", "greedy_identical", "targets")
            },
            indent=2,
        )
    )
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
