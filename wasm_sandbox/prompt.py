"""The prompt as the host keeps it: one UTF-8 file, memory-mapped, exposed read-only to the guest.

Why a file + mmap: a 40 MB (or multi-GB) prompt must not be copied into every sandbox. The guest sees the file
through a read-only WASI preopen of a directory that holds *only* that file (a hard link when the caller's file is
used in place), and host helpers (``search``, ``lines``, ``line_at``, ``slice``) run at native speed on the mmap.

All offsets the guest sees are *character* offsets. For pure-ASCII prompts characters are bytes; otherwise a
sparse checkpoint table (byte offset of every 1024th character) converts between the two.

Host memory and time stay bounded whatever the guest asks (the host is outside the guest's limits):

* every reply (a slice, the lines of one call, the snippets of one search) is at most :data:`MAX_REPLY_CHARS`
  characters; the guest fetches longer slices piece by piece;
* regex search uses the ``regex`` package (same syntax as ``re``) with a timeout, so a catastrophic pattern
  costs at most the calling cell's remaining CPU time; ASCII prompts are searched on the mmap directly, other
  prompts window by window (:data:`_WINDOW` characters decoded at a time, never the whole prompt).
"""

from __future__ import annotations

import mmap
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import regex

if TYPE_CHECKING:
    from .helpers import PromptTools

PROMPT_FILENAME = "prompt.txt"
DOC_SEPARATOR = "\n\n"
_CKPT = 1024  # characters between checkpoints
_SCAN = 4 << 20  # bytes per numpy scan chunk
_PREVIEW = 300
LONG_LINE_BYTES = 400  # a line longer than this is a paragraph, not one entry of a list
MAX_REPLY_CHARS = 4_000_000  # characters per host reply (slice / lines / line_at / search); the guest's _CHUNK
_WINDOW = 4_000_000  # characters decoded per search window on a non-ASCII prompt
_OVERLAP = 65_536  # characters of context on each side of a window (lookbehind, matches crossing the edge)


class SearchTimeout(TimeoutError):
    """A host regex search ran past the time it was given (the calling cell's remaining CPU time)."""


@dataclass(frozen=True)
class PromptMeta:
    chars: int
    bytes: int
    lines: int
    n_documents: int | None
    preview: str
    long_lines: int = 0  # lines over LONG_LINE_BYTES: paragraphs rather than one-line entries
    tokens: int = 0  # an estimate, filled in by a caller that has a tokenizer (the engine); 0 = not counted


def _is_cont(arr: np.ndarray) -> np.ndarray:
    return (arr & 0xC0) == 0x80


class Prompt:
    """A read-only prompt. Create with :meth:`Prompt.create`; share between sandboxes freely (thread-safe)."""

    def __init__(
        self, path: Path, dir_: Path, meta: PromptMeta, doc_spans: list[tuple[int, int]] | None, owned: bool
    ) -> None:
        self.path = path
        self.dir = dir_  # the directory preopened read-only in the guest (contains only the prompt file)
        self.meta = meta
        self.doc_spans = doc_spans
        self._owned = owned
        self._lock = threading.Lock()
        self._file = open(path, "rb")  # noqa: SIM115 - lives as long as the Prompt
        size = os.fstat(self._file.fileno()).st_size
        self._mm: mmap.mmap | bytes = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        self.ascii = meta.chars == meta.bytes
        self._ckpt: np.ndarray | None = None
        self._line_starts: np.ndarray | None = None  # byte offsets of line starts
        # document start offsets, precomputed once so doc_at is one binary search
        self._doc_starts = np.array([s for s, _ in doc_spans], dtype=np.int64) if doc_spans is not None else None
        self._tools: PromptTools | None = None

    # --- construction ------------------------------------------------------------------------------------
    @classmethod
    def create(cls, source: str | os.PathLike[str] | list[str], workdir: str | os.PathLike[str]) -> Prompt:
        """``source``: a str (the text), an os.PathLike (a UTF-8 file used in place), or a list of documents.

        The text is written once under ``workdir`` (a fresh subdirectory); a file source is hard-linked there
        so the guest's preopen holds nothing else (it is copied only if a hard link is impossible).
        """
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        d = Path(tempfile.mkdtemp(prefix="prompt-", dir=workdir))
        target = d / PROMPT_FILENAME
        doc_spans: list[tuple[int, int]] | None = None
        n_docs: int | None = None
        if isinstance(source, os.PathLike):
            src = Path(source).resolve()
            try:
                os.link(src, target)
            except OSError:
                # a different filesystem: the guest needs a directory holding only the prompt, so copy once
                import shutil

                shutil.copyfile(src, target)
        else:
            if isinstance(source, str):
                text = source
            elif isinstance(source, list):
                docs = [str(x) for x in source]
                n_docs = len(docs)
                doc_spans = []
                pos = 0
                for i, doc in enumerate(docs):
                    doc_spans.append((pos, pos + len(doc)))
                    pos += len(doc) + (len(DOC_SEPARATOR) if i < len(docs) - 1 else 0)
                text = DOC_SEPARATOR.join(docs)
            else:
                raise TypeError(f"prompt source must be str, os.PathLike or list[str], not {type(source).__name__}")
            with open(target, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        if not isinstance(source, os.PathLike):
            os.chmod(target, 0o444)
        meta = cls._scan(target, n_docs)
        return cls(target, d, meta, doc_spans, owned=True)

    @staticmethod
    def _scan(path: Path, n_docs: int | None) -> PromptMeta:
        size = path.stat().st_size
        chars = 0
        newlines = 0
        long_lines = 0
        run = 0  # bytes of the line still open at the end of the previous buffer
        last = b""
        with open(path, "rb") as f:
            while True:
                buf = f.read(_SCAN)
                if not buf:
                    break
                arr = np.frombuffer(buf, dtype=np.uint8)
                chars += int(arr.size - np.count_nonzero(_is_cont(arr)))
                nl = np.flatnonzero(arr == 0x0A)
                newlines += int(nl.size)
                if nl.size:
                    long_lines += int(run + nl[0] > LONG_LINE_BYTES)
                    long_lines += int(np.count_nonzero(np.diff(nl) - 1 > LONG_LINE_BYTES))
                    run = int(arr.size - nl[-1] - 1)
                else:
                    run += int(arr.size)
                last = buf[-1:]
            f.seek(0)
            preview = f.read(_PREVIEW * 4).decode("utf-8", errors="ignore")[:_PREVIEW]
        lines = newlines + (1 if size and last != b"\n" else 0)
        long_lines += int(run > LONG_LINE_BYTES)
        return PromptMeta(chars, size, lines, n_docs, preview, long_lines)

    # --- offsets -----------------------------------------------------------------------------------------
    def _checkpoints(self) -> np.ndarray:
        with self._lock:
            if self._ckpt is None:
                parts = []
                seen = 0  # characters before this chunk
                n = len(self._mm)
                for off in range(0, n, _SCAN):
                    arr = np.frombuffer(self._mm[off : off + _SCAN], dtype=np.uint8)
                    starts = np.flatnonzero(~_is_cont(arr))
                    # global char index of each start = seen + i; keep those divisible by _CKPT
                    first = (-seen) % _CKPT
                    parts.append(starts[first::_CKPT].astype(np.int64) + off)
                    seen += starts.size
                self._ckpt = np.concatenate(parts) if parts else np.zeros(1, dtype=np.int64)
            return self._ckpt

    def char_to_byte(self, c: int) -> int:
        c = max(0, min(c, self.meta.chars))
        if self.ascii:
            return c
        if c == self.meta.chars:
            return self.meta.bytes
        ck = self._checkpoints()
        k, rem = divmod(c, _CKPT)
        b = int(ck[k])
        if rem:
            chunk = bytes(self._mm[b : b + 4 * rem + 4]).decode("utf-8", errors="replace")[:rem]
            b += len(chunk.encode("utf-8"))
        return b

    def byte_to_char(self, b: int) -> int:
        b = max(0, min(b, self.meta.bytes))
        if self.ascii:
            return b
        ck = self._checkpoints()
        k = int(np.searchsorted(ck, b, side="right")) - 1
        base = int(ck[k])
        return k * _CKPT + len(bytes(self._mm[base:b]).decode("utf-8", errors="replace"))

    # --- helpers the guest calls ---------------------------------------------------------------------------
    def slice(self, start: int, end: int) -> str:
        """Characters [start, end) (clamped)."""
        n = self.meta.chars
        start, end = max(0, min(start, n)), max(0, min(end, n))
        if end <= start:
            return ""
        if self.ascii:
            return bytes(self._mm[start:end]).decode("ascii", errors="replace")
        return bytes(self._mm[self.char_to_byte(start) : self.char_to_byte(end)]).decode("utf-8", errors="replace")

    def text(self) -> str:
        """The whole prompt decoded on the host (not cached: a caller that wants it keeps it)."""
        return bytes(self._mm).decode("utf-8", errors="replace")

    def _clip_bytes(self, b0: int, b1: int, max_chars: int) -> int:
        """End byte <= b1 such that [b0, end) holds at most ``max_chars`` characters and ends on a char boundary."""
        if b1 - b0 <= max_chars:
            return b1
        end = b0 + max_chars  # chars <= bytes, so this many bytes never hold more than max_chars characters
        while end > b0 and (self._mm[end] & 0xC0) == 0x80:
            end -= 1
        return end

    def search(
        self, pattern: str, max_hits: int = 20, width: int = 80, ignore_case: bool = False, timeout: float | None = None
    ) -> list[tuple[int, str]]:
        """Regex search (an invalid regex is searched literally): [(char_offset, snippet)], at most max_hits.

        ``timeout`` (seconds, None = unbounded) bounds the whole search; past it :class:`SearchTimeout` is raised.
        The snippets of one call hold at most :data:`MAX_REPLY_CHARS` characters in all (a long match is cut).
        On a non-ASCII prompt the text is searched in windows of :data:`_WINDOW` characters with
        :data:`_OVERLAP` characters of context either side, so a match longer than that overlap that crosses a
        window edge may be cut or missed, and ``$``/``\\Z`` may also match at an inner window edge.
        """
        max_hits = max(0, min(int(max_hits), 10_000))
        width = max(0, min(int(width), 1000))
        flags = regex.IGNORECASE if ignore_case else 0
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        hits: list[tuple[int, str]] = []
        if max_hits == 0 or self.meta.bytes == 0:
            return hits
        budget = MAX_REPLY_CHARS

        def left() -> float | None:
            if deadline is None:
                return None
            rem = deadline - time.monotonic()
            if rem <= 0:
                raise SearchTimeout
            return rem

        def snippet(s: int, e: int) -> str:
            nonlocal budget
            a = max(0, s - width)
            b = min(e + width, a + budget)
            out = self.slice(a, b)
            budget -= len(out)
            return out

        try:
            if self.ascii:
                try:
                    brx = regex.compile(pattern.encode("utf-8"), flags)
                except regex.error:
                    brx = regex.compile(regex.escape(pattern.encode("utf-8")), flags)
                for m in brx.finditer(self._mm, timeout=left()):
                    hits.append((m.start(), snippet(m.start(), m.end())))
                    if len(hits) >= max_hits or budget <= 0:
                        break
                return hits
            try:
                rx = regex.compile(pattern, flags)
            except regex.error:
                rx = regex.compile(regex.escape(pattern), flags)
            n = self.meta.chars
            for cs in range(0, n, _WINDOW):
                ce = min(n, cs + _WINDOW)
                ws, we = max(0, cs - _OVERLAP), min(n, ce + _OVERLAP)
                window = self.slice(ws, we)
                for sm in rx.finditer(window, cs - ws, timeout=left()):
                    s = ws + sm.start()
                    if s >= ce and ce < n:
                        break
                    hits.append((s, snippet(s, ws + sm.end())))
                    if len(hits) >= max_hits or budget <= 0:
                        return hits
                del window
            return hits
        except TimeoutError as e:
            raise SearchTimeout(f"regex search gave up after {timeout:g} s") from e

    def _starts(self) -> np.ndarray:
        with self._lock:
            if self._line_starts is None:
                parts = [np.zeros(1, dtype=np.int64)]
                n = len(self._mm)
                for off in range(0, n, _SCAN):
                    arr = np.frombuffer(self._mm[off : off + _SCAN], dtype=np.uint8)
                    parts.append(np.flatnonzero(arr == 10).astype(np.int64) + off + 1)
                starts = np.concatenate(parts)
                if starts.size > 1 and starts[-1] >= n:  # a trailing newline does not start a line
                    starts = starts[:-1]
                self._line_starts = starts
            return self._line_starts

    def _line_bytes(self, i: int) -> tuple[int, int]:
        starts = self._starts()
        b0 = int(starts[i])
        if i + 1 < starts.size:
            b1 = int(starts[i + 1]) - 1
        else:
            b1 = len(self._mm)
            if self._mm[b1 - 1 : b1] == b"\n":
                b1 -= 1
        if b1 > b0 and self._mm[b1 - 1 : b1] == b"\r":
            b1 -= 1
        return b0, b1

    def lines(self, start: int, end: int | None = None) -> list[str]:
        """Lines [start, end) like ``text.split('\\n')[start:end]`` (negative indexes count from the end)."""
        if self.meta.bytes == 0:
            return []
        n = int(self._starts().size)
        if end is None:
            end = start + 1 if start >= 0 else (start + 1 or n)
        start, end, _ = slice(start, end).indices(n)
        end = min(end, start + 100_000)
        out = []
        budget = MAX_REPLY_CHARS  # chars for the whole reply; a line past it is cut, later lines are dropped
        for i in range(start, end):
            b0, b1 = self._line_bytes(i)
            b1 = self._clip_bytes(b0, b1, budget)
            line = bytes(self._mm[b0:b1]).decode("utf-8", errors="replace")
            out.append(line)
            budget -= len(line)
            if budget <= 0:
                break
        return out

    def line_at(self, offset: int) -> tuple[int, str]:
        """(line_number, line_text) of the line holding character ``offset`` (clamped)."""
        if self.meta.bytes == 0:
            return (0, "")
        b = self.char_to_byte(offset)
        starts = self._starts()
        i = max(0, int(np.searchsorted(starts, min(b, len(self._mm) - 1), side="right")) - 1)
        b0, b1 = self._line_bytes(i)
        b1 = self._clip_bytes(b0, b1, MAX_REPLY_CHARS)
        return (i, bytes(self._mm[b0:b1]).decode("utf-8", errors="replace"))

    def doc_at(self, offset: int) -> int | None:
        """Index of the document holding character ``offset``; None for a single-text prompt."""
        if self._doc_starts is None:
            return None
        i = int(np.searchsorted(self._doc_starts, offset, side="right")) - 1
        return max(0, i)

    def tools(self) -> PromptTools:
        """The prompt-level helpers (chunks, files, definitions, retrieval), created once and shared by every
        sandbox over this prompt, so an index is built once per prompt."""
        with self._lock:
            if self._tools is None:
                from .helpers import PromptTools

                self._tools = PromptTools(self)
            return self._tools

    def meta_dict(self) -> dict[str, object]:
        m = self.meta
        d: dict[str, object] = {
            "chars": m.chars,
            "bytes": m.bytes,
            "lines": m.lines,
            "n_documents": m.n_documents,
            "preview": m.preview,
        }
        if self.doc_spans is not None:
            d["doc_spans"] = self.doc_spans
        return d

    def close(self) -> None:
        """Unmap and delete the working copy (the caller's own file, if one was given, is left alone)."""
        self._tools = None  # the helpers' caches (the retrieval index) go with the prompt
        if isinstance(self._mm, mmap.mmap):
            try:
                self._mm.close()
            except BufferError:
                return  # an exported buffer is still alive; the OS reclaims it on exit
        self._file.close()
        if self._owned:
            try:
                self.path.unlink()
                self.dir.rmdir()
            except OSError:
                pass

    def __enter__(self) -> Prompt:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
