"""The GPU probe of ``bench/gpu_check.sh``: the default pair with every layer offloaded (``n_gpu_layers=-1``).

Why a probe of its own: the benchmark numbers of a CPU machine say nothing of what a GPU changes, and a GPU is
lent for minutes, so one short run must tell whether llama.cpp really offloads (``llama_supports_gpu_offload``)
and how fast the default root and worker prefill and decode there. Per model of the default pair: load time,
prefill tokens/s of a ~4K-token prompt, decode tokens/s of 128 greedy tokens, and one RLM-shaped batch of 8
sub-calls over a shared prefix.

Run: ``python -m bench.gpu --out bench/results/pair-gpu.json`` (``bench/gpu_check.sh`` does it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.machine import describe as machine
from engine.backends import load_backend
from engine.backends.base import Message, SamplingParams
from engine.rlm import DEFAULT_ROOT, DEFAULT_WORKER

PROMPT_WORDS = "The harbor master counted forty crates near the old mill on day {i}, and wrote it in the ledger. "


def gpu_offload() -> bool:
    """Whether the installed llama.cpp was built with a GPU backend."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def probe(spec: str, n_ctx: int, n_gpu_layers: int) -> dict[str, Any]:
    """Load ``spec`` with ``n_gpu_layers``, time a long prefill, a decode and a batch of sub-calls."""
    t0 = time.monotonic()
    b = load_backend(spec, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers)
    try:
        load_s = time.monotonic() - t0
        text = "".join(PROMPT_WORDS.format(i=i) for i in range(160))  # ~4K tokens
        msgs = [Message("system", "Summarise the text."), Message("user", text)]
        t1 = time.monotonic()
        g = b.chat(msgs, SamplingParams(max_tokens=1))
        prefill_s = time.monotonic() - t1
        t2 = time.monotonic()
        d = b.chat([Message("user", "Count from 1 to 200, one number per line.")], SamplingParams(max_tokens=128))
        decode_s = time.monotonic() - t2
        prompts = [f"Line {i}: " + PROMPT_WORDS.format(i=i) * 20 + "\nWhat day is it?" for i in range(8)]
        t3 = time.monotonic()
        outs = b.batch("You answer in a few words.", prompts, SamplingParams(max_tokens=16))
        batch_s = time.monotonic() - t3
        return {
            "model": spec,
            "n_gpu_layers": n_gpu_layers,
            "load_s": round(load_s, 2),
            "prefill_tokens": g.prompt_tokens,
            "prefill_tok_s": round(g.prompt_tokens / max(prefill_s, 1e-9), 1),
            "decode_tokens": d.completion_tokens,
            "decode_tok_s": round(d.completion_tokens / max(decode_s, 1e-9), 1),
            "batch8_s": round(batch_s, 3),
            "batch8_answers": len(outs),
        }
    finally:
        b.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-ctx", type=int, default=8192)
    args = ap.parse_args(argv)
    specs = list(dict.fromkeys([DEFAULT_ROOT, DEFAULT_WORKER]))
    res = {
        "machine": {**machine(), "gpu_offload": gpu_offload()},
        "pair": {"root": DEFAULT_ROOT, "worker": DEFAULT_WORKER},
        "models": [probe(s, args.n_ctx, -1) for s in specs],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(res["models"], indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
