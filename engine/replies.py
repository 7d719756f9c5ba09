"""Pure functions over model replies and cell results: code extraction, truncation, answer text.

They hold the loop's text conventions in one place and are unit-tested without a model or a sandbox.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from engine.backends.base import Backend
from wasm_sandbox import CellResult

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_LANGS = {"", "python", "py", "python3", "repl"}


def extract_code(text: str) -> tuple[list[str], str]:
    """Fenced code blocks to run, and the reply cut after the last of them (drops invented outputs after it).

    An unclosed last fence counts (generation stops at "Output:"); blocks tagged as another language (``output``,
    ``text``) are never run.
    """
    blocks: list[str] = []
    end = 0
    for m in _FENCE.finditer(text):
        lang = m.group(1).lower()
        code = m.group(2).strip("\n")
        if lang in _CODE_LANGS and code.strip():
            blocks.append(code)
            end = m.end()
    if not blocks:
        bare = _bare_code(text)
        if bare is not None:
            return [bare], f"```python\n{bare}\n```"
    kept = text[:end] if blocks else text
    if blocks and not kept.rstrip().endswith("```"):
        kept = kept.rstrip() + "\n```"
    return blocks, kept


def _bare_code(text: str) -> str | None:
    """Code written without its opening fence (seen from Qwen2.5-Coder-1.5B: statements, then a lone closing fence).

    Only a reply whose part before its one fence parses as Python with at least one call counts, so prose is
    never run.
    """
    if text.count("```") != 1:
        return None
    code = text.split("```", 1)[0].strip("\n")
    if not code.strip() or "(" not in code:
        return None
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    has_call = any(isinstance(n, ast.Call) for n in ast.walk(tree))
    return code if has_call else None


def truncate_output(text: str, max_chars: int) -> str:
    """Head and tail of a long output, stating the true length, so the model knows what it did not see."""
    if len(text) <= max_chars:
        return text
    head = int(max_chars * 0.6)
    tail = max_chars - head
    omitted = len(text) - head - tail
    return (
        f"{text[:head]}\n[... {omitted:,} characters omitted: the output was {len(text):,} characters, only the "
        f"first {head:,} and last {tail:,} are shown. Print less (e.g. print(x[:300])) ...]\n{text[-tail:]}"
    )


def answer_text(value: Any) -> str:
    """FINAL's value as the answer string (tuples/lists rendered plainly); ``None`` is no answer."""
    if value is None:
        return ""
    if isinstance(value, str):
        v = value.strip()
        if v == "None":  # the guest records str(value): FINAL(None) is not an answer
            return ""
        if v.startswith(("[", "(")) and v.endswith(("]", ")")):
            # a small model's FINAL(["x"]) should still answer "x"
            try:
                parsed = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                return v
            if isinstance(parsed, (list, tuple)) and all(isinstance(p, (str, int, float)) for p in parsed):
                return ", ".join(str(p).strip() for p in parsed)
        return v
    if isinstance(value, (list, tuple)):
        return ", ".join(answer_text(v) for v in value)
    return str(value).strip()


_FINAL_CALL = re.compile(r"FINAL\(\s*(.+?)\s*\)\s*$", re.DOTALL | re.MULTILINE)


def answer_from_reply(text: str) -> str:
    """A partial answer from a free-text reply (only used after a limit; never ends a run)."""
    blocks, _ = extract_code(text)
    body = "\n".join(blocks) if blocks else text
    m = _FINAL_CALL.search(body)
    if m:
        try:
            return answer_text(ast.literal_eval(m.group(1)))
        except (ValueError, SyntaxError):
            return m.group(1).strip()
    return body.strip().strip("`").strip()


def supports_grammar(backend: Backend) -> bool:
    """Backends that constrain sampling with a GBNF grammar (llama.cpp in process, llama.cpp-style servers)."""
    return bool(backend.info.extra.get("grammar", backend.info.backend in ("llama", "openai")))


NO_OUTPUT = "(no output - use print() to see values)"


def format_outcome(r: CellResult) -> str:
    """What the root sees of a cell: stdout, stderr, the displayed last expression, the error's tail."""
    parts = []
    if r.stdout:
        parts.append(r.stdout.rstrip("\n"))
    if r.stderr:
        parts.append(r.stderr.rstrip("\n"))
    if r.display is not None and r.display != "":
        parts.append(r.display.rstrip("\n"))
    if r.error:
        tb = (r.traceback or "").strip().splitlines()
        # the last lines of a traceback carry the line and the message; the top is sandbox plumbing
        tb_tail = "\n".join(tb[-6:]) if tb else ""
        parts.append(f"{tb_tail}\n{r.error}" if tb_tail and r.error not in tb_tail else (tb_tail or r.error))
    if not parts:
        parts.append(NO_OUTPUT)
    return "\n".join(parts)


def is_trivial_output(text: str) -> bool:
    """Outputs that say nothing (empty, no output, a bare None/[]/0): repeating them is not a loop."""
    t = text.strip()
    return t in ("", NO_OUTPUT, "None", "[]", "{}", "()", "0", "''", "True", "False") or len(t) <= 2


# The root's reply as the prompt asks for it: at most one short sentence (no calls in it), then one Python block.
# Without it the 1.5B root answered a question ending "answer yes or no if the question asks so" with a bare "Yes"
# on its first turn, three turns running (no_code, never having read the text). A sentence may hold no call,
# because a root allowed one wrote "Final(answer)" there and junk code after it. The block is never empty: allowed
# one, the root wrote "A. Protocol[_KT_co, _VT_co] is the first base class of ```python\n```" three turns running.
REPLY_GRAMMAR = 'root ::= [^`\\n()]{0,200} "\\n"? "```python\\n" code "```"\ncode ::= [^` \\t\\n] [^`]*\n'
