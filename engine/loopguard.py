"""Counters that stop a small root going round in circles: replies without code, failing cells, repeats.

Why these rules: a 1.5B root repeats a search whose output already holds the answer, or re-runs the same failing
cell. A repeat is the same *code* (compared without comments, via :mod:`tokenize`, so ``search("#include")`` and
``search("#define")`` stay different) or the same non-trivial *output* as an earlier cell. Only consecutive repeats
count: one repeat followed by new work is a hint, not a loop.
"""

from __future__ import annotations

import hashlib
import io
import tokenize
from dataclasses import dataclass, field

from engine.replies import is_trivial_output


def normalize_code(code: str) -> str:
    """A key for ``code`` that ignores comments, blank lines and trailing spaces (string contents are kept)."""
    try:
        toks = [
            (t.type, t.string)
            for t in tokenize.generate_tokens(io.StringIO(code.strip() + "\n").readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
            and t.type != tokenize.ENDMARKER
        ]
        body = "\x00".join(f"{k}:{s}" for k, s in toks)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        body = "\n".join(ln.rstrip() for ln in code.strip().splitlines() if ln.strip())
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class LoopGuard:
    max_no_code: int
    max_errors: int
    max_repeats: int
    no_code: int = 0
    errors: int = 0
    repeats: int = 0
    _codes: set[str] = field(default_factory=set)
    _outputs: set[str] = field(default_factory=set)

    def reply_without_code(self) -> bool:
        """Count a reply that had no code; True when the run must stop (``no_code``)."""
        self.no_code += 1
        return self.no_code >= self.max_no_code

    def reply_with_code(self) -> None:
        self.no_code = 0

    def seen(self, code: str) -> bool:
        """Whether ``code`` repeats a cell already run (before running it again)."""
        return normalize_code(code) in self._codes

    def cell(self, code: str, output: str, failed: bool) -> bool:
        """Record an executed turn; True when it repeats earlier work (code, or a non-trivial output)."""
        code_key = normalize_code(code)
        out_key = hashlib.sha256(output.strip().encode()).hexdigest()
        repeated = code_key in self._codes or (
            not failed and not is_trivial_output(output) and out_key in self._outputs
        )
        self._codes.add(code_key)
        if not failed and not is_trivial_output(output):
            self._outputs.add(out_key)
        self.repeats = self.repeats + 1 if repeated else 0
        self.errors = self.errors + 1 if failed else 0
        return repeated

    @property
    def looping(self) -> bool:
        return self.repeats > self.max_repeats

    @property
    def too_many_errors(self) -> bool:
        return self.errors >= self.max_errors
