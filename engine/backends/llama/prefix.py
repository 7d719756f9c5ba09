"""Shared prefixes: a small LRU pool of sequences, each holding one prefix computed once (or loaded from disk).

Why a pool and not one sequence: when the root and the worker run on the same model, the root's system prompt
and the worker's are both hot, and a single prefix sequence would recompute them in turn (thrash). Each group of
requests (a ``batch`` call, a root ``chat`` turn) names the tokens it wants shared; :meth:`PrefixPool.pick`
chooses the slot that already holds them (or extends them), else a free or the least recently used slot. The
requests then tag those cells into their own sequences with ``seq_cp`` (no copy in a unified KV cache), so a slot
may be reused the moment its requests have started. System-prompt prefixes of at least ``min_saved_prefix_tokens``
are saved to disk (:mod:`engine.backends.prefix_store`) and restored by the next process. Decode thread only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.backends.base import BackendError
from engine.backends.llama.config import LlamaStats
from engine.backends.llama.kv import DECODE_NO_SLOT, DECODE_OK, Batch, KVOps
from engine.backends.llama.model import lcp
from engine.backends.llama.requests import Group
from engine.backends.prefix_store import PrefixStore, prefix_key
from engine.log import get_logger, log

_log = get_logger("backend.llama")


class PrefixError(BackendError):
    pass


@dataclass
class PrefixSlot:
    seq: int
    tokens: list[int]
    last_used: int = 0
    joint: Any = None  # the request filling this slot together with its own prompt (see Scheduler)


class PrefixPool:
    def __init__(
        self,
        kv: KVOps,
        seqs: list[int],
        stats: LlamaStats,
        *,
        store: PrefixStore | None = None,
        model_fp: str = "",
        settings: dict[str, object] | None = None,
        min_saved_tokens: int = 64,
    ) -> None:
        self._kv = kv
        self.slots = [PrefixSlot(seq=s, tokens=[]) for s in seqs]
        self.stats = stats
        self.store = store
        self._fp = model_fp
        self._settings = settings or {}
        self.min_saved = min_saved_tokens
        self._clock = 0

    def cells(self) -> int:
        return sum(len(s.tokens) for s in self.slots)

    def saves_to_disk(self, group: Group) -> bool:
        return self.store is not None and group.sys_len >= self.min_saved

    def pick(self, group: Group) -> tuple[PrefixSlot, int] | None:
        """The slot ``group`` would use and how many of its tokens it keeps; None: wait (slot being filled).

        A slot is reused when it holds a prefix of the group's tokens, or the group's whole system prompt (a
        different common tail is then cut off); otherwise an empty or the least recently used slot is taken, so
        two unrelated system prompts (root and worker) each keep a slot of their own.
        """
        shared = group.shared
        best: PrefixSlot | None = None
        best_l = -1
        best_held: list[int] = []
        for s in self.slots:
            # a slot being filled by a joint prefill counts with the tokens it is about to hold
            held = s.joint.group.shared if s.joint is not None else s.tokens
            n = lcp(held, shared)
            if n > best_l:
                best, best_l, best_held = s, n, held
        if (
            best is not None
            and best_held
            and (best_l == len(best_held) or (group.sys_len > 0 and best_l >= group.sys_len))
        ):
            return None if best.joint is not None else (best, best_l)
        free = [s for s in self.slots if s.joint is None]
        if not free:
            return None
        empty = [s for s in free if not s.tokens]
        victim = empty[0] if empty else min(free, key=lambda s: s.last_used)
        return victim, 0

    def take(self, group: Group) -> tuple[PrefixSlot, int] | None:
        """:meth:`pick`, then cut the slot down to the kept tokens (evicting another prefix if needed)."""
        got = self.pick(group)
        if got is None:
            return None
        slot, keep = got
        if keep < len(slot.tokens):
            if keep == 0:
                self.stats.prefix_evictions += 1
            self._kv.seq_rm(slot.seq, keep, -1)
            del slot.tokens[keep:]
        self._clock += 1
        slot.last_used = self._clock
        return slot, keep

    def ensure(self, group: Group) -> tuple[PrefixSlot, int]:
        """A slot holding all of ``group.shared``, and how many of its tokens were there already."""
        got = self.take(group)
        if got is None:
            raise PrefixError("internal: prefix slot busy")
        slot, pre = got
        target = group.shared
        sys_len = group.sys_len
        t0 = time.perf_counter()
        if pre < sys_len and self.saves_to_disk(group) and self._restore(slot, target[:sys_len]):
            pre = sys_len
        if len(slot.tokens) < sys_len:
            self._decode(slot, target[len(slot.tokens) : sys_len])
            if self.saves_to_disk(group):
                self._save(slot)
        if len(slot.tokens) < len(target):
            self._decode(slot, target[len(slot.tokens) :])
        self.stats.prefix_seconds += time.perf_counter() - t0
        return slot, pre

    def drop_idle(self) -> int:
        """Forget every prefix not being filled (requests keep their own tagged cells); returns cells freed."""
        freed = 0
        for s in self.slots:
            if s.joint is None and s.tokens:
                freed += len(s.tokens)
                self._kv.seq_rm(s.seq, -1, -1)
                s.tokens = []
        return freed

    def clear(self) -> None:
        for s in self.slots:
            s.joint = None
        self.drop_idle()

    # ------------------------------------------------------------------ compute, persist

    def _decode(self, slot: PrefixSlot, tokens: list[int]) -> None:
        step = max(1, self._kv.n_batch)
        for start in range(0, len(tokens), step):
            chunk = tokens[start : start + step]
            pos = len(slot.tokens)
            b = Batch()
            for j, t in enumerate(chunk):
                b.add(t, pos + j, (slot.seq,), False)
            rc = self._kv.decode(b)
            if rc == DECODE_NO_SLOT:  # KV full: drop the other idle prefixes, never sessions
                for other in self.slots:
                    if other is not slot and other.joint is None and other.tokens:
                        self._kv.seq_rm(other.seq, -1, -1)
                        other.tokens = []
                rc = self._kv.decode(b)
            if rc != DECODE_OK:
                self._kv.seq_rm(slot.seq, len(slot.tokens), -1)
                raise PrefixError(
                    f"llama_decode failed ({rc}) while computing a shared prefix of {len(tokens)} tokens; "
                    "the KV cache is full (see LlamaConfig's capacity rule)"
                )
            slot.tokens.extend(chunk)
            self.stats.prefix_tokens_decoded += len(chunk)

    def _file(self, tokens: list[int]) -> tuple[str, Path] | None:
        if self.store is None:
            return None
        key = prefix_key(self._fp, self._settings, tokens)
        return key, self.store.path_for(key)

    def _restore(self, slot: PrefixSlot, tokens: list[int]) -> bool:
        found = self._file(tokens)
        if found is None or self.store is None or not self.store.verified(found[0]):
            return False  # absent, or not whole (llama.cpp would abort the process on a truncated file)
        _, path = found
        slot.tokens = []
        t0 = time.monotonic()
        if not self._kv.load_seq(path, slot.seq, tokens):
            log(_log, "warning", "ignored a stale or foreign prefix file", path=str(path))
            return False
        slot.tokens = list(tokens)
        self.stats.prefix_tokens_restored += len(tokens)
        log(_log, "info", "restored prefix", tokens=len(tokens), seconds=round(time.monotonic() - t0, 4))
        return True

    def _save(self, slot: PrefixSlot) -> None:
        tokens = list(slot.tokens)
        found = self._file(tokens)
        if found is None or self.store is None or self.store.verified(found[0]):
            return
        key, _ = found
        try:
            tmp = self.store.temp_path_for(key)
            if not self._kv.save_seq(tmp, slot.seq, tokens):
                tmp.unlink(missing_ok=True)
                return
            self.store.commit(tmp, key)
            self.stats.prefix_saves += 1
        except OSError as e:  # a read-only cache dir must not break generation
            log(_log, "warning", "could not save prefix", error=str(e))
