r"""wasm_sandbox: model-written Python in a Wasmtime sandbox, with read-only access to the prompt.

Host API (what the RLM loop uses)::

    prompt = Prompt.create(source, workdir)       # str | os.PathLike (file used in place) | list[str] documents
    host = HostFunctions(llm_query=..., llm_query_batched=..., rlm_query=...,
                         extra={"llm_map": fn, "classify": fn},   # engine-provided calls: fn(args: dict) -> JSON
                         waiting=None)                            # extras that are model waits (None: all)
    sb = Sandbox(prompt, host, SandboxLimits(cpu_seconds=30, memory_bytes=512 << 20, max_output_chars=20_000),
                 cancel=token,                    # anything with is_set(): CancelToken, threading.Event
                 cache_root=None)                 # outcore's cache dir (default $OUTCORE_CACHE_DIR / user cache)
    r = sb.run_cell(code)                          # CellResult; never raises for what the code does
    sb.cancel = next_token                         # one token per run; replace it between runs
    sb.close()

``CellResult``: ``stdout, stderr, error, traceback, display`` (a bare last-line expression, like a notebook),
``variables, final, limit`` (``None | "cpu_time" | "memory" | "output" | "cancelled"``), ``state_reset`` (the
instance was replaced: every variable is gone), ``duration_s`` and ``restored_names`` (built-in names the cell
rebound or deleted; they were restored after it: tell the model to use other names).

Setup: ``python -m wasm_sandbox.build [--cache-root DIR]`` (idempotent) builds the guest component and caches it,
compiled, under ``<cache root>/sandbox``. A Sandbox created before that raises :class:`SandboxNotBuiltError`.

Cancellation: ``cancel`` is checked when every host call starts and returns and at every 10 ms epoch tick, so a
cancelled cell stops within ~10 ms of computing or when the host call it waits in returns (the engine's model
calls should watch the same token). The instance is replaced and ``limit == "cancelled"``.

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
    plain text. A search that runs past the cell's remaining CPU time is stopped and the cell ends as a CPU limit.
``lines(start, end=None)``
    Lines ``start`` .. ``end-1`` of the prompt (0-based, like ``context.splitlines()[start:end]``); ``end``
    defaults to ``start + 1``.
``line_at(offset)``
    ``(line_number, line_text)`` for the line holding character ``offset`` (e.g. a ``search`` hit).
``context.doc_at(offset)``
    For a list-of-documents prompt: the index of the document holding character ``offset`` (a ``search``
    hit; offsets count the documents joined with ``"\n\n"``). ``None`` for a single text.
``retrieve(query, k=5)``
    The ``k`` passages that best match ``query`` by BM25 (``bm25s``; stemmed words, English stop words dropped),
    best first: a list of ``(offset, passage)``. Passages are the documents of a list-of-documents prompt, else
    the paragraphs (text between blank lines); anything longer than 1,000 characters is cut into pieces at line
    breaks. The index is built on the host on first use (about 0.15 s per MB on a 2-core CPU; a 40 MB prompt
    takes seconds) and cached per ``Prompt``, shared by its sandboxes; a cell that cannot wait for it ends as a
    CPU limit saying so, and the build goes on for a later cell.
``chunks(size=4000, delimiter=None)``
    The prompt cut into pieces, as a list-like of ``(offset, text)`` whose texts are fetched when used.
    ``delimiter=None``: consecutive pieces of at most ``size`` characters covering the whole text, cut after a
    newline where possible (each document on its own). With a delimiter: split at each occurrence of that
    literal string (dropped, empty pieces skipped), long pieces cut further. At most 100,000 chunks.
``doc_titles()``
    For a list-of-documents prompt: the first non-empty line of each document (at most 200 characters each).
``files()``
    Paths of the source files of a prompt that concatenates files, found by header lines: ``### File: path``
    (any number of ``#``), ``==> path <==``, ``--- path ---``, ``File: path``, ``<file path="path">``, or any line
    that is only a path between marks or after a label (``// ===== FILE: path =====``); the style with the most
    headers wins. ``[]`` when there are none.
``read_file(path, start=None, end=None)``
    One file's text (a unique end of its path is enough); ``start``/``end``: lines numbered from 1, inclusive.
``definition(name, path=None)``
    The source of the ``def``/``class`` named ``name`` (``'Class.method'`` for a method), found on the host
    (``ast`` for Python files, indentation otherwise): a dict with ``source, path, line, end_line`` (1-based, as
    ``read_file`` counts), ``offset`` (in the prompt), ``matches`` (every ``[path, line]`` defining it) and
    ``defaults`` (a Python function's parameters with their defaults as written, by the parser).
``llm_query(prompt, **opts)`` / ``llm_query_batched(prompts, **opts)`` / ``rlm_query(prompt, **opts)``
    Ask a sub-model (one prompt -> ``str``; a list -> list of ``str``, ``None`` for an item that failed; a
    recursive RLM -> ``str``). A failure raises ``HostError`` with the host's message.
``llm_map(items, instruction, **opts)`` / ``classify(items, labels, instruction=None, **opts)``
    Engine-provided (``HostFunctions.extra``): the guest sends ``{"items": [str, ...], "instruction": str,
    **opts}`` / ``{"items": [...], "labels": [str, ...], ["instruction": str,] **opts}`` (an ``(offset, text)``
    item is sent as its text) and returns the host's answer. Without a host implementation they raise ``HostError`` saying
    ``NotImplementedError: <name>() is not provided``. Any other extra gets a forwarder
    ``name(*args, **opts)`` sending ``{**opts, "args": [...]}``.
``terms(text=None, n=6)``, ``find(query, k=10, regex=False)``, ``read(passages, question=None)``, ``entries()``,
``filter(items, pattern)``, ``extract(items, pattern | ask=...)``, ``label(items, labels, instruction=None)``,
``reduce(values, op, by=None, dates=None)``, ``chain(answer, template)``
    The typed operators (``guest/outcore_ops.py``, whose docstrings state each contract). ``terms`` and ``find``
    are host calls of this package (:mod:`wasm_sandbox.operators`: words ranked by how rare they are in the
    prompt; BM25 passages or the lines a regex matches); ``read``, ``label`` and ``extract(ask=...)`` reach the
    engine's extras ``op_read``, ``op_label``, ``op_extract``, and the others run in the guest and report to the
    extra ``op_event`` (none of these four gets a forwarder). A step that cannot be right raises ``StepRefused``
    (a ``ValueError``) with a one-line reason.
``HostError``
    What a failed host call raises (its message is the host's), e.g. ``except HostError as e: print(e)``.
``FINAL(value)``
    Record the final answer as ``str(value)``; the run ends after this cell.
``SHOW_VARS()``
    Print the variables defined so far with their types.

Every reply is capped: at most 4,000,000 characters per host reply (a longer line, file or snippet is cut;
``context[a:b]`` and ``str(context)`` fetch longer text piece by piece), 1,000 per ``retrieve`` passage, 50,000
per ``definition`` source. Only the model calls (and the extras declared waiting) are excluded from the cell's
CPU time; every prompt helper counts.

Every name above is reserved: a cell may use it for its own value while it runs, but the built-in is restored
after the cell and ``CellResult.restored_names`` says so. A bare expression on a cell's last line is shown like a
notebook (``CellResult.display``). Only allow-listed stdlib modules import (re, json, math, collections,
itertools, functools, statistics, string, textwrap, difflib, heapq, bisect, datetime, time, random, hashlib,
...); anything else raises ``ImportError`` naming the allowed set.

Security boundary: the guest's own namespace is not a security boundary (a cell can reach the guest module's
internals, e.g. via ``FINAL.__globals__``, and tamper with reserved names or the answer protocol for its own later
cells); the host boundary is: WebAssembly + WASI, the host-enforced CPU/memory/output limits, and host replies.

Logging: ``logging.getLogger("outcore.sandbox")`` with structured fields in ``extra={"fields": {...}}`` (the
application installs the handler). This package imports nothing of ``engine``.

A ``KeyboardInterrupt``/``SystemExit`` raised by a host function (Ctrl-C during ``llm_query``) cancels the cell:
the instance is replaced (REPL state reset) and ``run_cell`` re-raises the exception to its caller.
"""

from .artifacts import SandboxNotBuiltError
from .cell_result import CellResult
from .hostcalls import HostFunctions
from .prompt import Prompt, PromptMeta
from .sandbox import Sandbox, SandboxLimits

__all__ = [
    "CellResult",
    "HostFunctions",
    "Prompt",
    "PromptMeta",
    "Sandbox",
    "SandboxLimits",
    "SandboxNotBuiltError",
]
