"""The methods compared: ``base``, ``base-4k``, ``rlm``, ``rlm-no-sub``, ``summary``, ``ref-rlm``, plus ``oracle``
and ``baseline``.

* ``base``: the root model prompted directly with as much of the context as its whole window holds (the root's
  ``n_ctx``), cut from the MIDDLE so the head and the tail survive and the question is always kept, as the
  paper's base model runs (a base that reads a fraction of its window would be a handicapped baseline);
* ``base-4k``: the same, reading at most 4,096 tokens: the earlier, smaller read, labelled as such;
* ``rlm``: the engine's RLM with the root and worker (``RLM(...).completion(context, question)``);
* ``rlm-no-sub``: the same REPL without ``llm_query``/``rlm_query`` (``RLM(..., sub_calls=False)``), the paper's
  ablation;
* ``rlm-code``: the RLM in plan mode ``code`` (the paper's plain prompt: no typed operators, no first step), the
  ablation of the plan layer (``rlm`` is plan mode ``auto``: typed for a root under 4B);
* ``summary``: an iterative summarising agent: the root reads the context window by window, rewriting its notes
  for the question each time, then answers from the notes;
* ``ref-rlm``: the reference implementation (PyPI ``rlms``) over the same GGUF models served by ``outcore serve``
  (see :mod:`bench.ref_rlm`; needs the ``[ref]`` extra);
* ``oracle`` / ``baseline``: each family's oracle solver and closed-book/regex baseline (no model).

Every method runs on any root/worker spec (catalog name, ``.gguf`` path, ``openai:URL``). Models are loaded once
per benchmark run and shared by all methods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.tasks import Family, Instance
from engine.backends import load_backend
from engine.backends.base import Backend, ContextOverflowError, Generation, Message, SamplingParams

_log = logging.getLogger("outcore.bench")

MODEL_METHODS = ("base", "base-4k", "rlm", "rlm-no-sub", "rlm-code", "summary", "ref-rlm")
RLM_METHODS = ("rlm", "rlm-no-sub", "rlm-code")  # the engine itself: these need the worker loaded
METHODS = (*MODEL_METHODS, "oracle", "baseline")

BASE_SYSTEM = "You answer questions about a text. Reply with the answer only, no explanation."
NOTES_TOKENS = 256
_TEMPLATE_MARGIN = 96  # chat-template tokens around the messages
SMALL_READ = 4096  # tokens ``base-4k`` reads
CUT_NOTE = "\n[... the middle of the text did not fit and was left out ...]\n"


@dataclass
class Outcome:
    """What one method produced for one instance, with the accounting the report needs."""

    answer: str
    finish_reason: str
    usage: dict[str, dict[str, float]] = field(default_factory=dict)  # role -> calls/prompt/completion/cached
    sub_calls: int = 0
    depth: int = 0
    root_turns: int = 0
    trace_path: str | None = None
    error: str | None = None
    context_tokens_used: int | None = None  # base/summary: root tokens of context actually read


class Method(Protocol):
    name: str

    def run(self, instance: Instance, family: Family, deadline_s: float) -> Outcome: ...


class Models:
    """The root and worker backends, loaded on first use and shared by every method (the same spec: one model)."""

    def __init__(self, root: str, worker: str, root_options: dict[str, Any], worker_options: dict[str, Any]) -> None:
        self.root_spec, self.worker_spec = root, worker
        self.root_options, self.worker_options = root_options, worker_options
        self._root: Backend | None = None
        self._worker: Backend | None = None
        self._given = False  # backends handed in are closed by whoever made them

    @classmethod
    def of(cls, root: Backend, worker: Backend | None = None) -> Models:
        """Models around backends that already exist (a scripted backend in tests, a shared server's model)."""
        m = cls(root.info.name, (worker or root).info.name, {}, {})
        m._root, m._worker = root, worker or root
        m._given = True
        return m

    @staticmethod
    def _options(spec: str, options: dict[str, Any]) -> dict[str, Any]:
        if spec.startswith("openai:"):  # an HTTP server has no llama.cpp settings
            return {k: v for k, v in options.items() if k == "n_ctx"}
        return options

    def root(self) -> Backend:
        if self._root is None:
            _log.info("loading root %s", self.root_spec)
            self._root = load_backend(self.root_spec, **self._options(self.root_spec, self.root_options))
        return self._root

    def worker(self) -> Backend:
        if self._worker is not None:
            return self._worker
        if self.worker_spec == self.root_spec and self.worker_options == self.root_options:
            return self.root()
        _log.info("loading worker %s", self.worker_spec)
        self._worker = load_backend(self.worker_spec, **self._options(self.worker_spec, self.worker_options))
        return self._worker

    def close(self) -> None:
        if not self._given:
            for b in {id(b): b for b in (self._worker, self._root) if b is not None}.values():
                b.close()
        self._root = self._worker = None


def _usage(gens: list[Generation]) -> dict[str, float]:
    return {
        "calls": len(gens),
        "prompt_tokens": sum(g.prompt_tokens for g in gens),
        "completion_tokens": sum(g.completion_tokens for g in gens),
        "cached_tokens": sum(g.cached_tokens for g in gens),
    }


def fit_prefix(backend: Backend, text: str, budget: int) -> tuple[str, int]:
    """The longest head of ``text`` (found in a few proportional steps) that is at most ``budget`` model tokens."""
    return _fit(backend, text, budget, lambda chars: text[:chars])


def fit_suffix(backend: Backend, text: str, budget: int) -> tuple[str, int]:
    """The longest tail of ``text`` (found in a few proportional steps) that is at most ``budget`` model tokens."""
    return _fit(backend, text, budget, lambda chars: text[len(text) - chars :])


def _fit(backend: Backend, text: str, budget: int, piece_of: Callable[[int], str]) -> tuple[str, int]:
    if budget <= 0:
        return "", 0
    chars = min(len(text), budget * 6)
    best = ("", 0)
    for _ in range(8):
        piece = piece_of(chars)
        n = backend.count_tokens(piece)
        if n <= budget:
            best = max(best, (piece, n), key=lambda b: b[1])
            if chars >= len(text) or n >= budget * 0.97:
                break
            chars = min(len(text), int(chars * budget / max(n, 1) * 0.99) + 1)
        else:
            chars = int(chars * budget / n * 0.98)
    return best


def fit_middle_cut(backend: Backend, text: str, budget: int) -> tuple[str, int, bool]:
    """``text`` if it fits ``budget`` tokens, else its head and tail (half the budget each) around a cut note.

    Why the middle: a needle or a fact is as likely near the end as near the start, and a head-only read makes
    the base blind to the last part of every long context. Returns (text, tokens, cut)."""
    whole = backend.count_tokens(text) if len(text) <= budget * 8 else budget + 1
    if whole <= budget:
        return text, whole, False
    room = budget - backend.count_tokens(CUT_NOTE)
    head, nh = fit_prefix(backend, text, room // 2)
    tail, nt = fit_suffix(backend, text[len(head) :], room - nh)
    return head + CUT_NOTE + tail, nh + nt, True


class OracleMethod:
    name = "oracle"

    def run(self, instance: Instance, family: Family, deadline_s: float) -> Outcome:
        return Outcome(family.oracle(instance), "oracle")


class BaselineMethod:
    name = "baseline"

    def run(self, instance: Instance, family: Family, deadline_s: float) -> Outcome:
        return Outcome(family.baseline(instance), "baseline")


class BaseMethod:
    """The root model prompted directly; the context is cut from the middle to what ``window`` tokens hold."""

    def __init__(self, models: Models, window: int | None = None, name: str = "base") -> None:
        self.models = models
        self.window = window  # tokens of the root's context this method may use (None: all of it)
        self.name = name

    def run(self, instance: Instance, family: Family, deadline_s: float) -> Outcome:
        root = self.models.root()
        tail = f"\n\nQuestion: {instance.question}"
        fixed = root.count_tokens(BASE_SYSTEM + "Text:\n" + tail) + instance.answer_tokens + _TEMPLATE_MARGIN
        budget = _window(root, self.window) - fixed
        for _ in range(3):
            text, used, cut = fit_middle_cut(root, instance.context, budget)
            msgs = [Message("system", BASE_SYSTEM), Message("user", f"Text:\n{text}{tail}")]
            try:
                g = root.chat(msgs, SamplingParams(max_tokens=instance.answer_tokens))
            except ContextOverflowError as e:  # the template took more than the margin: shrink and retry
                budget -= (e.prompt_tokens - e.available_tokens) + 64
                continue
            reason = "cut" if cut else "direct"
            return Outcome(g.text, reason, {"root": _usage([g])}, root_turns=1, context_tokens_used=used)
        return Outcome("", "context_overflow", error="the question alone does not fit the root's context")


class RLMMethod:
    """The engine's RLM; ``sub_calls=False`` is the no-sub-call ablation, ``name`` labels another variant."""

    def __init__(
        self,
        models: Models,
        *,
        sub_calls: bool,
        trace_dir: Path | None,
        limits: dict[str, Any],
        name: str | None = None,
    ) -> None:
        self.name = name or ("rlm" if sub_calls else "rlm-no-sub")
        self.models = models
        self.sub_calls = sub_calls
        self.trace_dir = trace_dir
        self.limits = limits
        self._rlm: Any = None

    def _engine(self) -> Any:
        if self._rlm is None:
            from engine import RLM

            trace: Path | bool = self.trace_dir if self.trace_dir is not None else False
            if self.trace_dir is not None:
                self.trace_dir.mkdir(parents=True, exist_ok=True)
            self._rlm = RLM(
                root=self.models.root(),
                worker=self.models.worker(),
                trace=trace,
                sub_calls=self.sub_calls,
                **self.limits,
            )
        return self._rlm

    def close(self) -> None:
        if self._rlm is not None:
            self._rlm.close()
            self._rlm = None

    def run(self, instance: Instance, family: Family, deadline_s: float) -> Outcome:
        rlm = self._engine()
        prompt: str | list[str] = instance.documents if instance.documents else instance.context
        c = rlm.completion(prompt, instance.question, limits={"max_wall_s": deadline_s})
        usage = {role: _usage_dict(u) for role, u in _roles(c).items()}
        return Outcome(
            answer=c.answer,
            finish_reason=c.finish_reason,
            usage=usage,
            sub_calls=int(c.sub_calls),
            depth=int(getattr(c, "max_depth_reached", max((int(d) for d in c.usage_by_depth), default=0))),
            root_turns=int(c.root_turns),
            trace_path=c.trace_path,
            error=getattr(c, "error", None),
        )


def _roles(c: Any) -> dict[str, Any]:
    by_role = getattr(c, "usage_by_role", None)
    if by_role is not None:
        return dict(by_role)
    return dict(getattr(c, "usage_by_model", {}))  # an engine without per-role usage: per model name


def _usage_dict(u: Any) -> dict[str, float]:
    return {k: getattr(u, k, 0) for k in ("calls", "prompt_tokens", "completion_tokens", "cached_tokens")}


class SummaryMethod:
    """Iterative summarising agent: read window by window, keep notes for the question, answer from the notes."""

    name = "summary"
    step = (
        "Question: {q}\n\nNotes so far:\n{notes}\n\nPart {i} of about {n} of the text:\n{chunk}\n\n"
        "Rewrite the notes for the question: keep every earlier note and add what this part says that helps "
        "answer it (exact names, numbers, IDs, dates, counts so far). Reply with the notes only."
    )
    final = "Question: {q}\n\nNotes taken while reading the whole text:\n{notes}\n\nAnswer the question from the notes."

    def __init__(self, models: Models, window: int | None = None) -> None:
        self.models = models
        self.window = window

    @staticmethod
    def _next_chunk(root: Backend, text: str, pos: int, budget: int) -> str:
        """The window that starts at ``pos``: at most ``budget`` tokens, ending at a line break when one is near."""
        piece, _ = fit_prefix(root, text[pos : pos + budget * 6], budget)
        if pos + len(piece) < len(text):
            nl = piece.rfind("\n", len(piece) // 2)
            piece = piece[: nl + 1] if nl > 0 else piece
        return piece or text[pos : pos + max(1, budget)]

    def run(self, instance: Instance, family: Family, deadline_s: float) -> Outcome:
        root = self.models.root()
        t0 = time.monotonic()
        text = instance.context
        fixed = root.count_tokens(self.step.format(q=instance.question, notes="", i=1, n=1, chunk=""))
        budget = _window(root, self.window) - fixed - 2 * NOTES_TOKENS - _TEMPLATE_MARGIN
        gens: list[Generation] = []
        notes = "(none yet)"
        reason = "final"
        used = pos = i = 0
        n = 1
        while pos < len(text):
            if time.monotonic() - t0 > deadline_s:
                reason = "max_wall_s"
                break
            chunk = self._next_chunk(root, text, pos, budget)
            i += 1
            if i == 1:  # windows are about the same size: the first one tells how many there are
                n = max(1, -(-len(text) // len(chunk)))
            msg = self.step.format(q=instance.question, notes=notes, i=i, n=max(n, i), chunk=chunk)
            g = _chat(root, msg, NOTES_TOKENS)
            gens.append(g)
            used += g.prompt_tokens
            notes = g.text.strip() or notes
            pos += len(chunk)
        g = _chat(root, self.final.format(q=instance.question, notes=notes), instance.answer_tokens)
        gens.append(g)
        return Outcome(g.text, reason, {"root": _usage(gens)}, root_turns=len(gens), context_tokens_used=used)


def _window(root: Backend, window: int | None) -> int:
    return min(root.info.n_ctx, window) if window else root.info.n_ctx


def _chat(root: Backend, user: str, max_tokens: int) -> Generation:
    return root.chat([Message("system", BASE_SYSTEM), Message("user", user)], SamplingParams(max_tokens=max_tokens))


def build(
    names: list[str],
    models: Models,
    trace_dir: Path | None,
    rlm_limits: dict[str, Any],
    window: int | None = None,
) -> list[Method]:
    """Method objects by name, in the order given. ``window`` caps the context ``base``/``summary`` read at once
    (None: the root's whole window); ``base-4k`` reads at most 4,096 tokens whatever the window."""
    small = min(window, SMALL_READ) if window else SMALL_READ
    factories: dict[str, Callable[[], Method]] = {
        "base": lambda: BaseMethod(models, window),
        "base-4k": lambda: BaseMethod(models, small, name="base-4k"),
        "rlm": lambda: RLMMethod(models, sub_calls=True, trace_dir=trace_dir, limits=rlm_limits),
        "rlm-no-sub": lambda: RLMMethod(models, sub_calls=False, trace_dir=trace_dir, limits=rlm_limits),
        "rlm-code": lambda: RLMMethod(
            models, sub_calls=True, trace_dir=trace_dir, limits={**rlm_limits, "plan_mode": "code"}, name="rlm-code"
        ),
        "summary": lambda: SummaryMethod(models, window),
        "ref-rlm": lambda: _ref_rlm(models, trace_dir, rlm_limits),
        "oracle": OracleMethod,
        "baseline": BaselineMethod,
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown method {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    return [factories[n]() for n in names]


def _ref_rlm(models: Models, trace_dir: Path | None, limits: dict[str, Any]) -> Method:
    from bench.ref_rlm import RefRLMMethod  # only when asked for: it starts a server

    return RefRLMMethod(models, trace_dir, limits)
