"""The root's conversation and the policy that keeps it inside the root's context.

Why compact *before* an overflow: a context-overflow error costs a wasted prefill and, worse, loses the session's
KV. When the history passes a threshold of the root's window, old cell outputs are replaced by a one-line note and
their full text moves into the REPL list ``notes`` (the evidence stays reachable by code, not by the model's
attention). The system prompt, the first user message and the latest exchange are never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.backends.base import Message

COMPACT_AT = 0.7  # fraction of the root's n_ctx (after reserving the reply) that triggers compaction
KEEP_TAIL = 2  # latest messages kept whole
_REMOVED = "[older output moved to notes[{i}] to save context]"


@dataclass
class History:
    messages: list[Message]
    note_pending: bool = False  # compaction happened since the root was last told about `notes`
    _tokens: dict[int, int] = field(default_factory=dict)  # hash(content) -> token count cache

    def append(self, role: str, content: str) -> None:
        self.messages.append(Message(role, content))  # type: ignore[arg-type]

    def tokens(self, count: Callable[[str], int]) -> int:
        total = 0
        for m in self.messages:
            key = hash(m.content)
            n = self._tokens.get(key)
            if n is None:
                n = count(m.content) + 4  # role markers of the chat template
                self._tokens[key] = n
            total += n
        return total

    def over(self, count: Callable[[str], int], n_ctx: int, reply_tokens: int) -> bool:
        return self.tokens(count) > COMPACT_AT * max(n_ctx - reply_tokens, 1)

    def compact(self, first_note: int = 0) -> list[str]:
        """Replace old cell outputs (user messages after the first) by a note; return their full texts in order.

        ``first_note`` is the index the first returned text will get in the REPL's ``notes`` list.
        """
        moved: list[str] = []
        for i in range(2, max(2, len(self.messages) - KEEP_TAIL)):
            m = self.messages[i]
            if m.role == "user" and len(m.content) > 200 and not m.content.startswith("[older output"):
                self.messages[i] = Message("user", _REMOVED.format(i=first_note + len(moved)))
                moved.append(m.content)
                self.note_pending = True
            elif m.role == "assistant" and len(m.content) > 1200:
                self.messages[i] = Message("assistant", m.content[:600] + "\n[... rest of this old reply removed]")
        return moved
