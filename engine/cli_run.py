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

from pydantic import ValidationError

from engine import trace as trace_mod
from engine.errors import UserError
from engine.guardrails import Limits
from engine.inputs import InvalidPromptError, check_prompt, context_file

# The limits the CLI exposes as flags; help text, types and bounds come from the Limits declaration itself.
CLI_LIMITS = (
    "max_root_turns",
    "max_sub_calls",
    "max_sub_calls_per_cell",
    "max_batch_width",
    "max_depth",
    "max_tokens_per_model",
    "max_wall_s",
    "cell_cpu_s",
    "max_output_chars",
    "max_sub_prompt_tokens",
    "root_max_tokens",
    "root_temperature",
    "root_seed",
    "plan_mode",
)
# Backend settings for models loaded by the CLI: flag -> LlamaConfig field.
BACKEND_FLAGS = {
    "n_ctx": ("--n-ctx", int, "context tokens of each model: the whole KV pool shared by all sequences"),
    "n_gpu_layers": ("--n-gpu-layers", int, "layers offloaded to the GPU (-1: all, 0: CPU only)"),
    "n_threads": ("--threads", int, "CPU threads per model (default: all cores)"),
    "n_parallel": ("--parallel", int, "worker sequences decoded at once"),
}


class LiveStatus:
    """Counts trace events and redraws one status line on a TTY."""

    def __init__(self, stream: Any = None, tick_s: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self.turns = self.cells = self.subs = self.tokens = 0
        self.phase = "starting"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if self.tty:  # keep the clock moving during a long prefill, when no event arrives for many seconds
            threading.Thread(target=self._tick, args=(tick_s,), name="outcore-status", daemon=True).start()

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._lock:
                self.draw()

    def __call__(self, event: str, f: dict[str, Any]) -> None:
        with self._lock:
            if event == "root_turn_start":
                self.phase = f"root turn {f.get('turn')} (depth {f.get('depth', 0)})"
            elif event == "root_turn":
                self.turns += 1
                self.tokens += int(f.get("prompt_tokens", 0)) + int(f.get("completion_tokens", 0))
                self.phase = "running cell"
            elif event == "cell_start":
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
        self._stop.set()
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _add_model_and_limit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=None, help="root model name or GGUF path (default qwen2.5-coder-1.5b)")
    p.add_argument(
        "--worker", default=None, help="worker model name or GGUF path (default: the root model, loaded once)"
    )
    p.add_argument("--trace", default=None, help="trace file or directory (default ~/.cache/outcore/traces)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    for field, (flag, typ, help_) in BACKEND_FLAGS.items():
        p.add_argument(flag, type=typ, default=None, dest=field, help=help_)
    for name in CLI_LIMITS:
        info = Limits.model_fields[name]
        if name == "plan_mode":  # a choice, not a number (see engine.strategy.modes)
            choices = ["typed", "code", "auto"]
            p.add_argument(
                "--plan-mode", choices=choices, default=None, dest=name, help=f"{info.description} (default auto)"
            )
            continue
        kind: type = float if info.annotation is float else int
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=None,
            dest=name,
            help=f"{info.description} (default {info.default})",
        )


def _limits_from(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in CLI_LIMITS if getattr(args, k, None) is not None}


def validated_limits(overrides: dict[str, Any]) -> Limits:
    """The limits or one clear line per bad value (the same bounds the Python API and the server enforce)."""
    try:
        return Limits(**overrides)
    except ValidationError as e:
        problems = "; ".join(
            f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg'].lower()} (got {err.get('input')!r})"
            for err in e.errors()
        )
        raise UserError(f"invalid limit: {problems}") from None


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """The backend flags given, checked against LlamaConfig's bounds (declared there once) before any model loads."""
    from engine.backends.llama.config import InvalidConfigError, LlamaConfig

    options = {k: getattr(args, k) for k in BACKEND_FLAGS if getattr(args, k, None) is not None}
    try:
        LlamaConfig(model="-", **options)
    except InvalidConfigError as e:
        flag = BACKEND_FLAGS[e.field][0] if e.field in BACKEND_FLAGS else e.field
        raise UserError(f"invalid option: {flag}: {e.problem}") from None
    except ValueError as e:
        raise UserError(f"invalid option: {e}") from None
    return options


def _build_rlm(args: argparse.Namespace, status: LiveStatus | None) -> Any:
    from engine.rlm import DEFAULT_ROOT, DEFAULT_WORKER, RLM

    limits = validated_limits(_limits_from(args))
    options = _backend_options(args)
    trace: str | bool = args.trace if args.trace else True
    return RLM(
        root=args.root or DEFAULT_ROOT,
        worker=args.worker or DEFAULT_WORKER,
        root_options=options,
        worker_options=options,
        trace=trace,
        on_event=status,
        direct=bool(getattr(args, "direct", False)),
        **limits.model_dump(exclude_defaults=True),
    )


def _print_result(c: Any, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        d = c.to_dict()
        d.update(extra or {})
        print(json.dumps(d, ensure_ascii=False))
        return
    print(c.answer)
    tokens = ", ".join(f"{role}: {u.total_tokens:,}" for role, u in c.usage_by_role.items())
    note = " (partial answer)" if c.partial else ""
    print(
        f"-- {c.finish_reason}{note}; {c.root_turns} root turns, {c.sub_calls} sub-calls, tokens {tokens}; "
        f"{c.elapsed_s:.1f}s; trace: {c.trace_path}",
        file=sys.stderr,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    if args.context == "-":
        buf = getattr(sys.stdin, "buffer", None)
        data = buf.read() if buf is not None else sys.stdin.read().encode("utf-8")
        try:
            prompt: Any = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"standard input is not UTF-8 text (invalid byte at offset {e.start:,})") from None
    elif args.context:
        prompt = context_file(Path(args.context))
    else:
        prompt = None
    question = args.question
    if prompt is None:
        if not question:
            raise UserError("give a question, a --context FILE, or both")
        prompt, question = question, None  # no context: the question itself is the prompt (plain LLM call)
        args.direct = True  # ...answered directly when it fits the root's context
    validated_limits(_limits_from(args))  # bad flags fail before any model loads
    _backend_options(args)
    try:
        check_prompt(prompt)
    except InvalidPromptError as e:
        raise UserError(str(e)) from None
    status = LiveStatus() if not args.json else None
    try:
        with _build_rlm(args, status) as rlm:
            c = rlm.completion(prompt, question)
    finally:
        if status:
            status.done()
    _print_result(c, args.json)
    if c.error and not args.json:
        print(f"outcore: error: {c.error}", file=sys.stderr)
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
    try:
        with _build_rlm(args, status) as rlm:
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
