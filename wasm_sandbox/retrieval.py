"""``retrieve(query, k)``: BM25 ranking of the prompt's passages, on the host, indexed once per prompt.

Why BM25 next to regex ``search``: a root model often knows what a passage is *about* but not its exact words; a
ranked list of the best-matching paragraphs finds it without a worker call per chunk. Why on the host: indexing a
40 MB prompt inside the guest would cost guest memory and ~3x the CPU; here it runs natively over the prompt text
and the index is shared by every sandbox that uses the same :class:`~wasm_sandbox.prompt.Prompt`.

Passages: the documents of a list-of-documents prompt, else the paragraphs (text between blank lines). A unit
longer than :data:`MAX_PASSAGE` characters is cut into pieces at line breaks (or spaces), so one huge paragraph
(a log, a table without blank lines) still ranks by its parts. Tokens: lowercased words of two or more
characters, English stop words removed, Snowball-stemmed (``bm25s`` + ``PyStemmer``; Lucene BM25 scores).

The index is built lazily by the first ``retrieve`` of a prompt, in a background thread: a caller waits at most
its own remaining CPU time (:class:`IndexNotReady` past it), and the build goes on, so a later cell finds it done.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .prompt import Prompt

MAX_PASSAGE = 1000  # characters per indexed passage (longer paragraphs/documents are cut into pieces)
MAX_K = 100
MAX_INDEX_CHARS = 512 << 20  # larger prompts: use search() (the index would need several GB of host memory)
_PARA = re.compile(r"\n[ \t\r\f\v]*\n\s*")


class IndexNotReady(TimeoutError):
    """The BM25 index is still being built after the time the caller could wait."""


@dataclass(frozen=True)
class Hit:
    offset: int
    text: str
    score: float


def _cut(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    """Append [start, end) stripped, cut into pieces of at most MAX_PASSAGE chars at newlines (else spaces)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > MAX_PASSAGE:
        limit = start + MAX_PASSAGE
        cut = text.rfind("\n", start + MAX_PASSAGE // 2, limit)
        if cut < 0:
            cut = text.rfind(" ", start + MAX_PASSAGE // 2, limit)
        if cut < 0:
            cut = limit
        out.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        out.append((start, end))


def passages(text: str, doc_spans: list[tuple[int, int]] | None) -> list[tuple[int, int]]:
    """Character spans of the passages to index (see the module docstring)."""
    spans: list[tuple[int, int]] = []
    if doc_spans is not None:
        for s, e in doc_spans:
            _cut(text, s, e, spans)
        return spans
    pos = 0
    for m in _PARA.finditer(text):
        _cut(text, pos, m.start(), spans)
        pos = m.end()
    _cut(text, pos, len(text), spans)
    return spans


class Bm25Index:
    """A BM25 index over one prompt's passages (immutable once built; queries are thread-safe)."""

    def __init__(self, text: str, doc_spans: list[tuple[int, int]] | None) -> None:
        import bm25s
        import Stemmer

        t0 = time.monotonic()
        self.spans = passages(text, doc_spans)
        self._tok = bm25s.tokenization.Tokenizer(stopwords="en", stemmer=Stemmer.Stemmer("english"))
        self._lock = threading.Lock()  # the tokenizer's caches are not thread-safe
        self._bm25: Any = None
        if self.spans:  # (bm25s cannot index an empty corpus)
            corpus = [text[s:e] for s, e in self.spans]
            tokens = self._tok.tokenize(corpus, return_as="tuple", show_progress=False)
            del corpus
            self._bm25 = bm25s.BM25()
            self._bm25.index(tokens, show_progress=False)  # ids + the tokenizer's vocabulary: queries use the same
        self.build_s = time.monotonic() - t0

    def query(self, query: str, k: int) -> list[tuple[int, float]]:
        """(passage index, score) of the best ``k`` passages with a positive score, best first."""
        if self._bm25 is None:
            return []
        with self._lock:
            q = self._tok.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)
        known = self._bm25.unique_token_ids_set
        qids = [i for i in (q[0] if q else []) if i in known and i != self._bm25.vocab_dict.get("")]
        if not qids:
            return []
        k = max(1, min(k, len(self.spans)))
        docs, scores = self._bm25.retrieve([qids], k=k, show_progress=False, n_threads=1)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


class LazyIndex:
    """Builds a :class:`Bm25Index` for ``prompt`` once, in the background, on first use."""

    def __init__(self, prompt: Prompt) -> None:
        self._prompt = prompt
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._index: Bm25Index | None = None
        self._error: BaseException | None = None
        self._started = 0.0

    def _build(self) -> None:
        try:
            p = self._prompt
            self._index = Bm25Index(p.text(), p.doc_spans)
        except BaseException as e:  # noqa: BLE001 - reported to every caller
            self._error = e
        finally:
            self._done.set()

    def get(self, timeout: float | None) -> Bm25Index:
        if self._prompt.meta.chars > MAX_INDEX_CHARS:
            raise ValueError(
                f"retrieve() indexes prompts of up to {MAX_INDEX_CHARS >> 20} M characters "
                f"(this one has {self._prompt.meta.chars:,}); use search() with a regex instead"
            )
        with self._lock:
            if self._thread is None:
                self._started = time.monotonic()
                self._thread = threading.Thread(target=self._build, name="outcore-bm25-index", daemon=True)
                self._thread.start()
        if not self._done.wait(timeout):
            raise IndexNotReady(
                f"the retrieval index of this {self._prompt.meta.chars:,}-character prompt is still being built "
                f"({time.monotonic() - self._started:.1f} s so far); it goes on in the background: call "
                "retrieve() again in a later cell"
            )
        if self._error is not None:
            raise RuntimeError(f"building the retrieval index failed: {self._error}") from self._error
        assert self._index is not None
        return self._index

    @property
    def index(self) -> Bm25Index | None:
        """The built index, or None (not started, still building or failed)."""
        return self._index


def retrieve(prompt: Prompt, lazy: LazyIndex, query: str, k: int, timeout: float | None, cap: int) -> list[Any]:
    """[[offset, passage], ...] best first; each passage at most ``cap`` characters."""
    k = max(0, min(int(k), MAX_K))
    if k == 0 or not str(query).strip():
        return []
    idx = lazy.get(timeout)
    out: list[Any] = []
    for i, _score in idx.query(str(query), k):
        s, e = idx.spans[i]
        out.append([s, prompt.slice(s, min(e, s + cap))])
    return out
