"""The host-call table: every name the guest's ``_call(name, args)`` may reach, and the host functions behind it.

Why a table: the guest crosses into the host through one WIT function, ``call(name, args-json)``. Built-in names
(prompt access and prompt-level helpers) are implemented here over the memory-mapped prompt; the model calls and
any *extra* engine-provided call (``llm_map``, ``classify``, ...) are forwarded to the callables the engine gave in
:class:`HostFunctions`. A name that is not in the table is answered with a clear error, never a crash.

Which calls are model waits matters for the cell's CPU limit: time spent in a waiting call (the three model calls,
and the extras declared waiting) is excluded; time in every other call counts, because it is work done on the
guest's behalf.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import operators as _ops
from .prompt import MAX_REPLY_CHARS, Prompt
from .retrieval import MAX_PASSAGE
from .retrieval import retrieve as _retrieve

if TYPE_CHECKING:
    from .helpers import PromptTools

MODEL_CALLS = frozenset({"llm_query", "llm_query_batched", "rlm_query"})
PROMPT_CALLS = frozenset(
    {"meta", "search", "lines", "line_at", "doc_at", "retrieve", "chunks", "doc_titles", "files", "read_file",
     "definition", "terms", "find"}
)  # fmt: skip
BUILTIN_CALLS = MODEL_CALLS | PROMPT_CALLS


def _unset(name: str) -> Callable[..., Any]:
    def fn(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError(f"{name} is not available in this sandbox")

    return fn


@dataclass
class HostFunctions:
    """Callables the guest's model calls forward to (called on the thread running the cell).

    ``extra``: engine-provided host calls beyond the three model calls, by name (for example ``llm_map`` and
    ``classify``, whose guest wrappers exist already); each gets the guest's arguments as one JSON dict and returns
    a JSON-able value (at most ``MAX_REPLY_CHARS`` once encoded). A name must be an identifier and must not be a
    built-in call. ``waiting``: which extras are model waits, excluded from the cell's CPU time (``None``: every
    extra is; name a subset when some extra does CPU work of its own that the cell's limit should bound).
    """

    llm_query: Callable[[str, dict[str, Any]], str] = field(default_factory=lambda: _unset("llm_query"))
    llm_query_batched: Callable[[list[str], dict[str, Any]], list[str | None]] = field(
        default_factory=lambda: _unset("llm_query_batched")
    )
    rlm_query: Callable[[Any, dict[str, Any]], str] = field(default_factory=lambda: _unset("rlm_query"))
    extra: Mapping[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)
    waiting: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for name, fn in self.extra.items():
            if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"host call name {name!r} must be a public Python identifier")
            if name in BUILTIN_CALLS:
                raise ValueError(f"host call {name!r} is built in; an extra cannot replace it")
            if not callable(fn):
                raise TypeError(f"host call {name!r} is not callable")
        if self.waiting is not None:
            unknown = set(self.waiting) - set(self.extra)
            if unknown:
                raise ValueError(f"waiting names {sorted(unknown)} are not in extra ({sorted(self.extra)})")

    def waiting_calls(self) -> frozenset[str]:
        """Every host call whose time is model waiting (excluded from the cell's CPU limit)."""
        extras = frozenset(self.extra) if self.waiting is None else frozenset(self.waiting)
        return MODEL_CALLS | extras


def _prompt_or_docs(p: Any) -> str | list[str]:
    """rlm_query's prompt: a list of documents stays a list (the child's ``context`` is those documents)."""
    return [str(x) for x in p] if isinstance(p, list) else str(p)


def build_table(
    prompt: Prompt, host: HostFunctions, remaining: Callable[[], float], meta_json: str
) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """name -> handler(args) for one sandbox. ``remaining()`` is the calling cell's CPU time left (seconds)."""
    p = prompt

    def tools() -> PromptTools:
        return p.tools()

    def search(a: dict[str, Any]) -> Any:
        return p.search(
            str(a["pattern"]),
            int(a.get("max_hits", 20)),
            int(a.get("width", 80)),
            bool(a.get("ignore_case", False)),
            timeout=max(remaining(), 0.0),
        )

    def lines(a: dict[str, Any]) -> Any:
        end = a.get("end")
        return p.lines(int(a.get("start", 0)), None if end is None else int(end))

    def batched(a: dict[str, Any]) -> Any:
        prompts = [str(x) for x in a["prompts"]]
        outs = list(host.llm_query_batched(prompts, dict(a.get("opts") or {})))
        if len(outs) != len(prompts):
            raise RuntimeError(f"llm_query_batched returned {len(outs)} answers for {len(prompts)} prompts")
        return [None if x is None else str(x) for x in outs]  # None: that item failed (the host counted it)

    def retrieve(a: dict[str, Any]) -> Any:
        return _retrieve(p, tools().index, str(a["query"]), int(a.get("k", 5)), max(remaining(), 0.0), MAX_PASSAGE)

    def read_file(a: dict[str, Any]) -> Any:
        start, end = a.get("start"), a.get("end")
        return tools().read_file(
            str(a["path"]), None if start is None else int(start), None if end is None else int(end), MAX_REPLY_CHARS
        )

    def definition(a: dict[str, Any]) -> Any:
        path = a.get("path")
        return tools().definition(str(a["name"]), None if path is None else str(path))

    def chunks(a: dict[str, Any]) -> Any:
        d = a.get("delimiter")
        return tools().chunks(int(a.get("size", 4000)), None if d is None else str(d))

    table: dict[str, Callable[[dict[str, Any]], Any]] = {
        "meta": lambda a: Raw(meta_json),
        "search": search,
        "lines": lines,
        "line_at": lambda a: list(p.line_at(int(a["offset"]))),
        "doc_at": lambda a: p.doc_at(int(a["offset"])),
        "llm_query": lambda a: str(host.llm_query(str(a["prompt"]), dict(a.get("opts") or {}))),
        "llm_query_batched": batched,
        "rlm_query": lambda a: str(host.rlm_query(_prompt_or_docs(a["prompt"]), dict(a.get("opts") or {}))),
        "retrieve": retrieve,
        "chunks": chunks,
        "doc_titles": lambda a: tools().doc_titles(),
        "files": lambda a: tools().files(),
        "read_file": read_file,
        "definition": definition,
        "terms": lambda a: _ops.terms(p, str(a.get("text") or ""), int(a.get("n", 6))),
        "find": lambda a: _ops.find(
            p, str(a["query"]), int(a.get("k", 10)), bool(a.get("regex", False)), max(remaining(), 0.0)
        ),
    }
    for name, fn in host.extra.items():
        table[name] = _extra(name, fn)
    return table


def _extra(name: str, fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    def call(a: dict[str, Any]) -> Any:
        return Checked(name, fn(a))

    return call


class Raw(str):
    """A JSON document that is already encoded."""


@dataclass(frozen=True)
class Checked:
    """An extra's result: encoded with a size check (an engine callable's reply is not trusted to be small)."""

    name: str
    value: Any


def not_provided(name: str, table: Mapping[str, Any]) -> str:
    extras = sorted(set(table) - BUILTIN_CALLS)
    have = f"; this host provides: {', '.join(extras)}" if extras else "; this host provides no extra calls"
    return f"NotImplementedError: {name}() is not provided by this sandbox's host{have}"
