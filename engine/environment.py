"""The environment seam: where a run's cells execute. The real one is the Wasm sandbox; tests may plug in others.

Why typed against :class:`wasm_sandbox.CellResult`: a field the sandbox adds (``display`` was once dropped here,
so a bare last-line expression looked like "no output" and tripped the loop detector) reaches the loop unchanged.
The loop provides one table of host calls (:class:`HostCalls`); the sandbox only forwards them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from engine.cancel import CancelToken
from engine.guardrails import Limits
from wasm_sandbox import CellResult
from wasm_sandbox.prompt import PromptMeta

PromptSource = str | Path | Sequence[str]


@dataclass(frozen=True)
class HostCalls:
    """The host functions a cell may call; ``opts`` is a dict of keyword options (e.g. ``{"max_tokens": 16}``).

    ``extra`` holds further engine-provided calls (``llm_map``, ``classify``, ...) by name; each takes the dict of
    arguments the guest passed. All of them are model waits: their time does not count as cell CPU time.
    """

    llm_query: Callable[[str, Any], str]
    llm_query_batched: Callable[[list[str], Any], list[str | None]]
    rlm_query: Callable[[str, Any], str]
    extra: Mapping[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)


class Environment(Protocol):
    meta: PromptMeta

    def run_cell(self, code: str) -> CellResult: ...

    def close(self) -> None: ...


class EnvironmentFactory(Protocol):
    def __call__(
        self,
        source: PromptSource,
        host: HostCalls,
        limits: Limits,
        workdir: Path,
        count_tokens: Callable[[str], int],
        cancel: CancelToken | None = None,
    ) -> Environment: ...


def estimate_tokens(count: Callable[[str], int], chars: int, sample: str) -> int:
    """Tokens of the whole prompt from a counted sample: never tokenises 10M tokens up front."""
    if not sample:
        return 0
    ratio = count(sample) / max(len(sample), 1)
    return int(chars * ratio)


class SandboxEnvironment:
    """The real environment: the Wasm sandbox over a prompt written once to ``workdir`` (or used in place)."""

    def __init__(
        self,
        source: PromptSource,
        host: HostCalls,
        limits: Limits,
        workdir: Path,
        count_tokens: Callable[[str], int],
        cancel: CancelToken | None = None,
    ) -> None:
        import wasm_sandbox as ws

        src: Any = list(source) if not isinstance(source, (str, Path)) else source
        self._prompt = ws.Prompt.create(src, workdir)
        m = self._prompt.meta
        preview = str(m.preview)[:400]
        self.meta = replace(m, preview=preview, tokens=estimate_tokens(count_tokens, int(m.chars), preview))
        hf = ws.HostFunctions(
            llm_query=host.llm_query,
            llm_query_batched=host.llm_query_batched,
            rlm_query=host.rlm_query,
            extra=dict(host.extra),
        )
        sl = ws.SandboxLimits(
            cpu_seconds=limits.cell_cpu_s,
            memory_bytes=limits.cell_memory_bytes,
            max_output_chars=max(limits.max_output_chars * 20, 100_000),
        )
        try:
            self._sb = ws.Sandbox(self._prompt, hf, sl, cancel=cancel)
        except BaseException:
            self._prompt.close()
            raise

    def run_cell(self, code: str) -> CellResult:
        return self._sb.run_cell(code)

    def close(self) -> None:
        try:
            self._sb.close()
        finally:
            self._prompt.close()
