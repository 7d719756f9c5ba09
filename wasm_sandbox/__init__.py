r"""wasm_sandbox: model-written Python in a Wasmtime sandbox, with read-only access to the prompt.

Host API (what the RLM loop uses)::

    prompt = Prompt.create(source, workdir)       # str | os.PathLike (file used in place) | list[str] documents
    sb = Sandbox(prompt, HostFunctions(llm_query=..., llm_query_batched=..., rlm_query=...),
                 SandboxLimits(cpu_seconds=30, memory_bytes=512 << 20, max_output_chars=20_000))
    r = sb.run_cell(code)                          # CellResult; never raises for what the code does
    sb.close()

Setup: ``python -m wasm_sandbox.build`` (idempotent) builds the guest component and caches it, compiled, under
``$OUTCORE_CACHE_DIR/sandbox`` (default ``platformdirs.user_cache_dir("outcore")/sandbox``). A Sandbox created
before that raises :class:`SandboxNotBuiltError` saying so.

Names the guest code sees (describe these to the model):

``context``
    The prompt, read-only, loaded lazily. Works like a ``str``: ``len(context)``, ``context[a:b]``,
    ``context.find/count/split/splitlines/...``, ``'x' in context``, ``re.findall(p, context)``; iterating it
    yields lines. For a list-of-documents prompt, ``len(context)`` is the number of documents and ``context[i]``
    is document ``i`` (a ``str``). Slicing a single-text prompt fetches only the slice.
``search(pattern, max_hits=20, width=80, ignore_case=False)``
    Regex search over the whole prompt, run natively on the host (fast, even for prompts bigger than guest
    memory). Returns a list of ``(offset, snippet)``: ``offset`` is the character offset of the match in the
    prompt, ``snippet`` the match with up to ``width`` characters either side. An invalid regex is searched as
    plain text. Its time counts against the cell's CPU limit: a search that runs past the cell's remaining time
    is stopped (``HostError`` saying the search exceeded the cell's CPU time, then the cell ends as a CPU limit).
``lines(start, end=None)``
    Lines ``start`` .. ``end-1`` of the prompt (0-based, like ``context.splitlines()[start:end]``); ``end``
    defaults to ``start + 1``.
``line_at(offset)``
    ``(line_number, line_text)`` for the line holding character ``offset`` (e.g. a ``search`` hit).
``context.doc_at(offset)``
    For a list-of-documents prompt: the index of the document holding character ``offset`` (a ``search``
    hit; offsets count the documents joined with ``"\n\n"``). ``None`` for a single text.
``llm_query(prompt, **opts)`` / ``llm_query_batched(prompts, **opts)`` / ``rlm_query(prompt, **opts)``
    Ask a sub-model (one prompt -> ``str``; a list -> list of ``str``; a recursive RLM -> ``str``). A failure
    raises ``HostError`` with the host's message.
``FINAL(value)``
    Record the final answer as ``str(value)``; the run ends after this cell.
``SHOW_VARS()``
    Print the variables defined so far with their types.

Host replies are capped at 4,000,000 characters each (a longer line or snippet is cut); ``context[a:b]`` and
``str(context)`` fetch longer text piece by piece, so they stay complete when the guest has memory for them.
Only ``llm_query``/``llm_query_batched``/``rlm_query`` are model waits excluded from the cell's CPU time; every
other host helper counts.

``context``, ``llm_query``, ``llm_query_batched``, ``rlm_query``, ``FINAL`` and ``SHOW_VARS`` are reserved:
they are restored after every cell. ``search``, ``lines`` and ``line_at`` may be rebound by a cell (they come
back only if deleted); they are also always available as ``context.search/lines/line_at``.
A bare expression on a cell's last line is shown like a notebook (``CellResult.display``). Only allow-listed
stdlib modules import (re, json, math, collections, itertools, functools, statistics, string, textwrap, difflib,
heapq, bisect, datetime, time, random, hashlib, ...); anything else raises ``ImportError`` naming the allowed set.

Security boundary: the guest's own namespace is not a security boundary (a cell can reach the guest module's
internals, e.g. via ``FINAL.__globals__``, and tamper with reserved names or the answer protocol for its own later
cells); the host boundary is: WebAssembly + WASI, the host-enforced CPU/memory/output limits, and host replies.

A ``KeyboardInterrupt``/``SystemExit`` raised by a host function (Ctrl-C during ``llm_query``) cancels the cell:
the instance is replaced (REPL state reset) and ``run_cell`` re-raises the exception to its caller.
"""

from .artifacts import SandboxNotBuiltError
from .prompt import Prompt, PromptMeta
from .sandbox import CellResult, HostFunctions, Sandbox, SandboxLimits

__all__ = [
    "CellResult",
    "HostFunctions",
    "Prompt",
    "PromptMeta",
    "Sandbox",
    "SandboxLimits",
    "SandboxNotBuiltError",
]
