"""``outcore run``, ``outcore demo`` and ``outcore trace``: the RLM engine on the command line.

On a terminal, a one-line live status (turn, cells, sub-calls, tokens, elapsed) is redrawn on stderr and the answer
goes to stdout; otherwise output is quiet and scriptable (``--json`` prints the whole Completion as one object).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine import trace as trace_mod
from engine.errors import UserError
from engine.guardrails import Limits

_LIMIT_HELP = {
    "max_root_turns": "root model turns",
    "max_sub_calls": "worker/child calls in the whole run",
    "max_sub_calls_per_cell": "sub-calls one cell may make",
    "max_batch_width": "prompts per llm_query_batched",
    "max_depth": "rlm_query nesting depth",
    "max_tokens_per_model": "prompt+completion tokens per model",
    "max_wall_s": "wall-clock seconds for the whole run",
    "cell_cpu_s": "CPU seconds per cell",
    "max_output_chars": "cell output characters shown to the root",
    "max_sub_prompt_tokens": "tokens per sub-call prompt (default: worker context)",
}


class LiveStatus:
    """Counts trace events and redraws one status line on a TTY."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self.turns = self.cells = self.subs = self.tokens = 0
        self.phase = "starting"
        self._lock = threading.Lock()

    def __call__(self, event: str, f: dict[str, Any]) -> None:
        with self._lock:
            if event == "root_turn":
                self.turns += 1
                self.tokens += int(f.get("prompt_tokens", 0)) + int(f.get("completion_tokens", 0))
                self.phase = "running cell"
            elif event == "cell":
                self.cells += 1
                self.phase = "root thinking"
            elif event == "run_start":
                self.phase = "root thinking"
            elif event == "subcall_start":
                self.phase = f"{f.get('kind')} x{f.get('n', 1)}"
            elif event == "subcall_end":
                self.subs += int(f.get("n", 1))
                self.tokens += int(f.get("prompt_tokens", 0)) + int(f.get("completion_tokens", 0))
                self.phase = "running cell"
            self.draw()

    def draw(self) -> None:
        if not self.tty:
            return
        el = time.monotonic() - self.t0
        self.stream.write(
            f"\r\033[K[{el:6.1f}s] turn {self.turns} | cells {self.cells} | sub-calls {self.subs} | "
            f"tokens {self.tokens:,} | {self.phase}"
        )
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _add_model_and_limit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=None, help="root model name or GGUF path (default qwen2.5-coder-1.5b)")
    p.add_argument("--worker", default=None, help="worker model name or GGUF path (default qwen2.5-coder-0.5b)")
    p.add_argument("--trace", default=None, help="trace file or directory (default ~/.cache/outcore/traces)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    defaults = Limits()
    for name, help_ in _LIMIT_HELP.items():
        default = getattr(defaults, name)
        typ = float if isinstance(default, float) else int
        p.add_argument(
            f"--{name.replace('_', '-')}", type=typ, default=None, dest=name, help=f"{help_} (default {default})"
        )


def _limits_from(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in _LIMIT_HELP if getattr(args, k, None) is not None}


def _build_rlm(args: argparse.Namespace, status: LiveStatus | None) -> Any:
    from engine.rlm import DEFAULT_ROOT, DEFAULT_WORKER, RLM

    trace: str | bool = args.trace if args.trace else True
    return RLM(
        root=args.root or DEFAULT_ROOT,
        worker=args.worker or DEFAULT_WORKER,
        trace=trace,
        on_event=status,
        direct=bool(getattr(args, "direct", False)),
        **_limits_from(args),
    )


def _print_result(c: Any, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        d = c.to_dict()
        d.update(extra or {})
        print(json.dumps(d, ensure_ascii=False))
        return
    print(c.answer)
    tokens = ", ".join(f"{m}: {u.total_tokens:,}" for m, u in c.usage_by_model.items())
    note = " (partial answer)" if c.partial else ""
    print(
        f"-- {c.finish_reason}{note}; {c.root_turns} root turns, {c.sub_calls} sub-calls, tokens {tokens}; "
        f"{c.elapsed_s:.1f}s; trace: {c.trace_path}",
        file=sys.stderr,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    if args.context == "-":
        prompt: Any = sys.stdin.read()
    elif args.context:
        path = Path(args.context)
        if not path.is_file():
            raise UserError(f"context file not found: {path}")
        prompt = path
    else:
        prompt = None
    question = args.question
    if prompt is None:
        if not question:
            raise UserError("give a question, a --context FILE, or both")
        prompt, question = question, None  # no context: the question itself is the prompt (plain LLM call)
        args.direct = True  # ...answered directly when it fits the root's context
    status = LiveStatus() if not args.json else None
    rlm = _build_rlm(args, status)
    try:
        c = rlm.completion(prompt, question)
    finally:
        if status:
            status.done()
    _print_result(c, args.json)
    return 0 if c.ok else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from engine import demo

    doc = demo.build_document()
    from wasm_sandbox.build import build as build_sandbox

    build_sandbox()  # idempotent: compiles the sandbox guest only when its sources changed
    if args.setup_only:
        print(f"demo document: {doc.path} ({doc.chars:,} characters, sha256 {doc.sha256[:12]})")
        return 0
    status = LiveStatus() if not args.json else None
    if not args.json:
        print(f"document: {doc.path} ({doc.chars:,} characters)\nquestion: {demo.QUESTION}", file=sys.stderr)
    rlm = _build_rlm(args, status)
    try:
        c = rlm.completion(doc.path, demo.QUESTION)
    finally:
        if status:
            status.done()
    right = demo.is_correct(c.answer)
    summary = trace_mod.summarize(trace_mod.read_events(c.trace_path)) if c.trace_path else {}
    if args.json:
        _print_result(c, True, {"correct": right, "expected": demo.EXPECTED, "trace_summary": summary})
    else:
        print(f"answer: {c.answer}")
        print(f"correct: {'yes' if right else 'no'} (expected: {' '.join(demo.EXPECTED)})")
        if c.trace_path:
            print(trace_mod.format_tree(trace_mod.read_events(c.trace_path)))
        _print_result_footer(c)
    return 0 if right else 1


def _print_result_footer(c: Any) -> None:
    print(f"finish: {c.finish_reason}; {c.elapsed_s:.1f}s (engine overhead {c.overhead_s:.2f}s); trace: {c.trace_path}")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="answer a question over a context of any size with an RLM",
        description="Run a Recursive Language Model: the context stays out of the model; "
        "a root model writes code that reads it and calls a worker model.",
    )
    p.add_argument("question", nargs="?", default=None, help="the question (without --context: the whole prompt)")
    p.add_argument("--context", "-c", default=None, help="file with the context, or - for stdin")
    p.add_argument(
        "--direct",
        action="store_true",
        help="answer with one plain root call (no REPL) when the prompt fits half the root's context",
    )
    _add_model_and_limit_options(p)
    p.set_defaults(func=_cmd_run)

    d = subparsers.add_parser("demo", help="the RLM demo: a question over a 2M-token document")
    d.add_argument("--setup-only", action="store_true", help="only build the demo document (idempotent)")
    _add_model_and_limit_options(d)
    d.set_defaults(func=_cmd_demo)

    trace_mod.register(subparsers)
