"""``outcore demo``: show the model catalog, load the default root and worker, and answer a short prompt.

This proves a fresh setup end to end (models present and verified, llama.cpp loads them) in well under a minute.
"""

from __future__ import annotations

import argparse
import time

from models.catalog import default_model
from models.store import ModelStore

PROMPT = "Write one Python expression that counts the lines of a string named text. Reply with the code only."


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="check the setup: load the default models and answer a short prompt")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for llama.cpp (default: all cores)")
    p.set_defaults(func=cmd_demo)


def answer(model_path: str, prompt: str, threads: int | None, max_tokens: int = 48) -> tuple[str, float]:
    import os

    from llama_cpp import Llama

    t0 = time.perf_counter()
    llm = Llama(model_path=model_path, n_ctx=1024, n_threads=threads or os.cpu_count() or 1, verbose=False)
    try:
        out = llm.create_chat_completion(
            messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0
        )
    finally:
        llm.close()
    text = str(out["choices"][0]["message"]["content"]).strip()  # type: ignore[index]
    return text, time.perf_counter() - t0


def cmd_demo(args: argparse.Namespace) -> int:
    from models.cli import cmd_list

    cmd_list(argparse.Namespace(json=False))
    store = ModelStore()
    for role in ("root", "worker"):
        spec = default_model(role)
        path = store.resolve(spec.name)
        text, secs = answer(str(path), PROMPT, args.threads)
        print(f"\n[{role}: {spec.display_name}, {secs:.1f} s]\n> {PROMPT}\n{text}")
    return 0
