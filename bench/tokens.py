"""Exact token counts with a pinned offline tokenizer (cl100k_base from ``bpe-openai==0.1.4``).

Why cl100k and not each root model's own tokenizer: sizes must mean the same thing for every model a user brings,
and must be computable without loading one. The counts are exact, not estimated: the text is encoded in pieces
that end right after a run of newlines followed by a non-space character. cl100k's pre-tokenizer never lets a
pre-token cross such a boundary, so the sum over the pieces equals the count of the whole text (``bpe-openai``
refuses inputs over ~100K characters at once). Text without newlines is cut before a single space between two
non-space characters, which is also a pre-token boundary.
"""

from __future__ import annotations

import functools
import re
from typing import Any

ENCODING = "cl100k_base"
TOKENIZER = "bpe-openai==0.1.4 cl100k_base"
_PIECE = 60_000
_BOUNDARY = re.compile(r"\n+(?=\S)")
_SPACE = re.compile(r"(?<=\S) (?=\S)")


@functools.lru_cache(maxsize=1)
def _encoding() -> Any:
    import warnings

    with warnings.catch_warnings():  # bpe-openai 0.1.4 reads its tables (on import) with a deprecated call
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        enc = bpe_openai.get_encoding(ENCODING)
        enc.encode_ordinary("load the tables now")  # they load lazily, on the first encode
        return enc


def _cut(text: str, start: int) -> int:
    """End of the piece that starts at ``start``: the last safe boundary before ``start + _PIECE``."""
    limit = start + _PIECE
    if limit >= len(text):
        return len(text)
    window = text[start:limit]
    ends = [m.end() for m in _BOUNDARY.finditer(window)]
    if ends and ends[-1] > 0:
        return start + ends[-1]
    # no paragraph break (RULER's essay haystack is one line): cut before a single space between two non-space
    # characters; the space then starts the next pre-token, as it does in the whole text
    starts = [m.start() for m in _SPACE.finditer(window)]
    if starts and starts[-1] > 0:
        return start + starts[-1]
    return limit  # 60K characters without a break: not text this suite generates


def count(text: str) -> int:
    """cl100k tokens in ``text`` (no special tokens)."""
    enc = _encoding()
    n = 0
    i = 0
    while i < len(text):
        j = _cut(text, i)
        n += len(enc.encode_ordinary(text[i:j]))
        i = j
    return n
