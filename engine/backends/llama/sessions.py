"""Chat sessions: a root conversation's KV kept alive in its own sequence between turns.

Why a table of its own: a session outlives its requests (its KV is the point), so who may drop it is a policy
that must be explicit. A session is dropped only by ``end_session`` or when a new session needs a sequence beyond
``max_sessions`` (least recently used idle one first) — never because worker requests want its KV cells: they
wait instead (see the scheduler). Decode thread only.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from engine.backends.llama.kv import KVOps


@dataclass
class Session:
    name: str
    seq: int = -1  # -1: no KV held (new, or dropped; the next turn recomputes its history)
    tokens: list[int] = field(default_factory=list)  # tokens whose KV is in ``seq``
    busy: bool = False  # a turn is running
    ending: bool = False  # end_session arrived during a turn: drop it when the turn ends


class SessionTable:
    def __init__(self, kv: KVOps, seqs: list[int]) -> None:
        self._kv = kv
        self._free = sorted(seqs, reverse=True)
        self.capacity = len(seqs)
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, name: str) -> Session | None:
        return self._sessions.get(name)

    def names(self) -> list[str]:
        return list(self._sessions)

    def holders(self) -> list[Session]:
        return [s for s in self._sessions.values() if s.seq >= 0]

    def can_start(self, name: str) -> bool:
        """Whether a turn of ``name`` can get a sequence now (it has one, one is free, or an idle one can go)."""
        sess = self._sessions.get(name)
        if sess is not None and sess.busy:
            return False
        if sess is not None and sess.seq >= 0:
            return True
        return bool(self._free) or any(not s.busy for s in self.holders())

    def acquire(self, name: str) -> Session:
        """The session's record, holding a sequence (evicting the least recently used idle session if needed)."""
        sess = self._sessions.get(name)
        if sess is None:
            sess = Session(name)
            self._sessions[name] = sess
        self._sessions.move_to_end(name)
        if sess.seq < 0:
            if not self._free:
                for victim in self.holders():  # least recently used first
                    if not victim.busy and victim is not sess:
                        self.release(victim)
                        self.evictions += 1
                        break
            if not self._free:
                raise RuntimeError("internal: no session sequence free although can_start() said so")
            sess.seq = self._free.pop()
            sess.tokens = []
        sess.busy = True
        return sess

    def finish_turn(self, sess: Session, fed: list[int] | None) -> None:
        """A turn ended: keep its KV (``fed``) for the next one, or drop it (``None``: the turn failed)."""
        sess.busy = False
        if fed is None or sess.ending:
            self.release(sess)
        else:
            sess.tokens = list(fed)
        if sess.ending:
            self._sessions.pop(sess.name, None)

    def release(self, sess: Session) -> None:
        if sess.seq >= 0:
            self._kv.seq_rm(sess.seq, -1, -1)
            self._free.append(sess.seq)
        sess.seq = -1
        sess.tokens = []

    def end(self, name: str) -> None:
        sess = self._sessions.get(name)
        if sess is None:
            return
        if sess.busy:
            sess.ending = True
            return
        self.release(sess)
        del self._sessions[name]

    def idle_cells(self) -> int:
        return sum(len(s.tokens) for s in self.holders() if not s.busy)

    def evict_one_idle(self, keep: str | None) -> bool:
        """Drop the least recently used idle session other than ``keep`` (only for a chat that cannot fit)."""
        for victim in self.holders():
            if not victim.busy and victim.name != keep:
                self.release(victim)
                self.evictions += 1
                return True
        return False

    def clear(self) -> None:
        for sess in list(self._sessions.values()):
            self.release(sess)
        self._sessions.clear()
