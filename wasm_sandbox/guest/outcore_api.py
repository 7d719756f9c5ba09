"""The guest's API over the host: the prompt as ``context``, the prompt helpers and the model calls.

Every function here crosses into the host through the WIT import ``host.call(name, args-json)`` (or
``host.slice`` for prompt text); the host's table is ``wasm_sandbox/hostcalls.py``. Replies are tagged: ``"s"`` + a
str, ``"0"`` + JSON, ``"1"`` + an error message (raised here as :class:`HostError`). The REPL itself (namespace,
output capture, reserved names) is ``outcore_guest.py``.
"""

# ruff: noqa: E402, I001
import builtins
import collections.abc
import json
import operator

from wit_world.imports import host as _host

import outcore_ops

PROMPT_FILE = "/prompt/prompt.txt"
_CHUNK = 4_000_000  # = prompt.MAX_REPLY_CHARS on the host: characters per host reply


class HostError(Exception):
    """A host function (llm_query, search, ...) failed; the message is the host's."""


def _call(name, args):
    return _call_encoded(name, json.dumps(args))


_enc = json.encoder.encode_basestring  # the C encoder for one str: ~10x cheaper than json.dumps of a dict


def _call_prompt(name, prompt, opts):
    """The hot path (llm_query, rlm_query): the args JSON built by hand."""
    return _call_encoded(name, '{"prompt":' + _enc(prompt) + ',"opts":' + (json.dumps(opts) if opts else "{}") + "}")


def _call_encoded(name, args_json):
    raw = _host.call(name, args_json)
    tag = raw[:1]
    if tag == "s":  # a str result, sent as is (no JSON on either side: the common llm_query case)
        return raw[1:]
    if tag == "0":
        return json.loads(raw[1:])
    raise HostError(raw[1:])


# --- the prompt -------------------------------------------------------------------------------------------
class _PromptState:
    meta = None
    text = None


def _meta():
    if _PromptState.meta is None:
        _PromptState.meta = _call("meta", {})
    return _PromptState.meta


def _full_text():
    if _PromptState.text is None:
        try:
            with builtins.open(PROMPT_FILE, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            text = _fetch(0, _meta()["chars"])
        _PromptState.text = text
    return _PromptState.text


def _coerce(x):
    return str(x) if isinstance(x, Context) else x


def _fetch(start, stop):
    """Characters [start, stop) from the host, at most _CHUNK per call (the host caps each reply)."""
    parts = []
    pos = start
    while pos < stop:
        part = _host.slice(pos, min(pos + _CHUNK, stop))
        if not part:
            break
        parts.append(part)
        pos += len(part)
    return parts[0] if len(parts) == 1 else "".join(parts)


def _text_slice(start, stop):
    if _PromptState.text is not None:
        return _PromptState.text[start:stop]
    n = _meta()["chars"]
    start, stop, _ = slice(start, stop).indices(n)
    if stop <= start:
        return ""
    return _fetch(start, stop)


class Context:
    """The prompt, read-only and lazily loaded. Behaves like a ``str`` (or a list of str for documents)."""

    __slots__ = ()

    # -- helpers (also available as top-level functions) --
    def search(self, pattern, max_hits=20, width=80, ignore_case=False):
        return search(pattern, max_hits=max_hits, width=width, ignore_case=ignore_case)

    def lines(self, start=0, end=None):
        return lines(start, end)

    def line_at(self, offset):
        return line_at(offset)

    def doc_at(self, offset):
        """Index of the document holding character offset `offset` (e.g. a search hit); None for one text."""
        return _call("doc_at", {"offset": int(offset)})

    # -- str / list behaviour --
    def _docs(self):
        return _meta().get("n_documents")

    def __len__(self):
        n = self._docs()
        return n if n is not None else _meta()["chars"]

    def __getitem__(self, key):
        n_docs = self._docs()
        if n_docs is not None:
            if isinstance(key, slice):
                return [self[i] for i in range(*key.indices(n_docs))]
            i = operator.index(key)
            if i < 0:
                i += n_docs
            if not 0 <= i < n_docs:
                raise IndexError("document index out of range")
            start, end = _meta()["doc_spans"][i]
            return _text_slice(start, end)
        if isinstance(key, slice):
            if key.step not in (None, 1):
                return str(self)[key]
            return _text_slice(key.start, key.stop)
        i = operator.index(key)
        n = _meta()["chars"]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("string index out of range")
        return _text_slice(i, i + 1)

    def __iter__(self):
        if self._docs() is not None:
            return iter([self[i] for i in range(self._docs())])
        return iter(str(self).splitlines())

    def __contains__(self, item):
        return _coerce(item) in str(self)

    def __str__(self):
        return _full_text()

    def __repr__(self):
        m = _meta()
        if m.get("n_documents") is not None:
            return f"<context: {m['n_documents']} documents, {m['chars']} chars>"
        return f"<context: {m['chars']} chars, {m['lines']} lines; preview: {m['preview'][:80]!r}>"

    def __format__(self, spec):
        return format(str(self), spec)

    def __eq__(self, other):
        return str(self) == _coerce(other)

    def __hash__(self):
        return hash(str(self))

    def __add__(self, other):
        return str(self) + _coerce(other)

    def __radd__(self, other):
        return _coerce(other) + str(self)

    def __bool__(self):
        return len(self) > 0

    def __setattr__(self, name, value):
        raise AttributeError("context is read-only")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(_full_text(), name)
        if callable(attr):

            def method(*args, **kwargs):
                return attr(*[_coerce(a) for a in args], **{k: _coerce(v) for k, v in kwargs.items()})

            return method
        return attr


context = Context()


# --- host helpers -----------------------------------------------------------------------------------------
def search(pattern, max_hits=20, width=80, ignore_case=False):
    """Regex search over the whole prompt on the host: list of (char_offset, snippet); invalid regex = literal."""
    hits = _call(
        "search",
        {"pattern": str(pattern), "max_hits": int(max_hits), "width": int(width), "ignore_case": bool(ignore_case)},
    )
    return [tuple(h) for h in hits]


def lines(start=0, end=None):
    """Lines start..end-1 of the prompt (0-based, like context.splitlines()[start:end]); end defaults to start+1."""
    return _call("lines", {"start": int(start), "end": None if end is None else int(end)})


def line_at(offset):
    """(line_number, line_text) of the line containing character offset `offset` (0-based)."""
    return tuple(_call("line_at", {"offset": int(offset)}))


def retrieve(query, k=5):
    """The k passages (paragraphs, or documents) that best match `query` by BM25 word overlap, best first.

    Returns a list of (offset, passage). Finds a passage by what it is about even when no exact phrase is known;
    words are stemmed, so 'manager' also finds 'managers'. Offsets work with line_at/context.doc_at."""
    return [tuple(h) for h in _call("retrieve", {"query": str(_coerce(query)), "k": int(k)})]


class Chunks(collections.abc.Sequence):
    """What chunks() returns: a list of (offset, text) pairs whose texts are fetched from the host when used."""

    __slots__ = ("_spans",)

    def __init__(self, spans):
        self._spans = spans

    def __len__(self):
        return len(self._spans) // 2

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        i = operator.index(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("chunk index out of range")
        start, end = self._spans[2 * i], self._spans[2 * i + 1]
        return (start, _text_slice(start, end))

    def texts(self):
        """The chunk texts, in order."""
        return [t for _, t in self]

    def __repr__(self):
        return f"<{len(self)} chunks of (offset, text); texts: [t for _, t in chunks]>"


def chunks(size=4000, delimiter=None):
    """The prompt cut into pieces: a list of (offset, text) (texts fetched lazily).

    delimiter=None: consecutive pieces of at most `size` characters that together cover the whole text, each cut
    after a newline where possible (documents are chunked one by one). delimiter='...': the text split at every
    occurrence of that literal string (like str.split, the delimiter dropped, empty pieces skipped), each piece
    longer than `size` cut further. E.g. chunks(delimiter='\n') gives one chunk per non-empty line."""
    return Chunks(_call("chunks", {"size": int(size), "delimiter": None if delimiter is None else str(delimiter)}))


def doc_titles():
    """For a list-of-documents prompt: the first non-empty line of each document (index i = context[i])."""
    return _call("doc_titles", {})


def files():
    """Paths of the source files in a prompt that concatenates files, in order, found by header lines such as
    '### File: path', '# File: path', '==> path <==', '--- path ---' or 'File: path'. [] if there are none."""
    return _call("files", {})


def read_file(path, start=None, end=None):
    """The text of one file of files() (a unique end of its path is enough, e.g. 'b.py' for 'pkg/a/b.py').

    start/end: a line range, numbered from 1 and inclusive like an editor's (read_file(p, 10, 20) is lines 10-20)."""
    return _call(
        "read_file",
        {"path": str(path), "start": None if start is None else int(start), "end": None if end is None else int(end)},
    )


def definition(name, path=None):
    """The source of the def or class named `name` ('parse', or 'Parser.parse' for a method) in the prompt's files.

    Returns a dict: source, path, line and end_line (1-based, as read_file counts), offset (in the prompt) and
    matches (every [path, line] defining that name; pass path=... to choose another). Raises HostError if none."""
    return _call("definition", {"name": str(name), "path": None if path is None else str(path)})


# --- engine-provided host calls: the host implements them; the guest forwards the arguments as one dict -----
def _items(items):
    out = []
    for x in items:
        x = _coerce(x)
        if isinstance(x, (tuple, list)) and len(x) == 2 and isinstance(x[0], int) and isinstance(x[1], str):
            x = x[1]  # an (offset, text) pair from chunks()/search()/retrieve()
        out.append(x if isinstance(x, str) else str(x))
    return out


def llm_map(items, instruction, **opts):
    """Ask the worker model `instruction` about every item; returns one answer per item, aligned with `items`.

    items: a list of str (or of (offset, text) pairs, e.g. chunks() or search() hits). The host batches the
    calls, parses the answers and retries unparsable ones; an item whose answer failed is None. Count or group
    the answers in Python afterwards, e.g. sum(a == 'yes' for a in llm_map(lines, 'Is it about delivery? yes/no'))."""
    return _call("llm_map", {"items": _items(items), "instruction": str(_coerce(instruction)), **opts})


def classify(items, labels, instruction=None, **opts):
    """Give every item one label from `labels`; returns one label per item, aligned with `items` (None = failed).

    items: a list of str (or (offset, text) pairs); instruction: optional, what the labels are about. The worker
    can only answer with one of the labels. E.g.
    collections.Counter(classify(tickets, ['delivery', 'payment', 'other'], 'What is the ticket about?'))."""
    if instruction is not None:
        opts["instruction"] = str(_coerce(instruction))
    return _call("classify", {"items": _items(items), "labels": [str(x) for x in labels], **opts})


def _forwarder(name):
    def call(*args, **opts):
        payload = dict(opts)
        if args:
            payload["args"] = [_coerce(a) for a in args]
        return _call(name, payload)

    call.__name__ = name
    call.__doc__ = f"{name}(...): a call the host provides; keyword arguments are sent to it as a dict."
    return call


# --- model calls ------------------------------------------------------------------------------------------
def llm_query(prompt, **opts):
    """Ask a sub-model; returns its answer as a str."""
    return _call_prompt("llm_query", str(_coerce(prompt)), opts)


def llm_query_batched(prompts, **opts):
    """Ask a sub-model several prompts at once; returns a list of answers in order (None for an item that
    failed)."""
    return _call("llm_query_batched", {"prompts": [str(_coerce(p)) for p in prompts], "opts": opts})


def rlm_query(prompt, **opts):
    """Ask a recursive language model (a sub-RLM with its own REPL) about `prompt`; returns its answer as a str.

    prompt: a str, or a list of str (the child's `context` is then that list of documents). question=...: what to
    ask (default: the prompt itself is the task)."""
    if isinstance(prompt, (list, tuple)):
        return _call("rlm_query", {"prompt": _items(prompt), "opts": opts})
    return _call_prompt("rlm_query", str(_coerce(prompt)), opts)


# --- the typed operators (outcore_ops.py): bound to this host-call function; the REPL binds its namespace -----
def _source():
    return list(context) if context._docs() is not None else str(context)


outcore_ops.bind(_call, HostError, source=_source)
