"""The decode steps of the scheduler: one llama_decode over every active request, then sampling.

Why apart from admission (:mod:`.scheduler`): what runs together is decided there; how one step is packed (the
generation tokens first, then prefill chunks up to ``n_batch``), what a sampled token does (stop strings,
``max_tokens``, streamed text) and what happens when the KV cache is unexpectedly full (preemption) is here. A
mixin of :class:`~engine.backends.llama.scheduler.Scheduler`, which owns the state and ends requests.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from engine.backends.base import FinishReason
from engine.backends.llama.config import LlamaConfig, LlamaStats
from engine.backends.llama.kv import DECODE_NO_SLOT, DECODE_OK, Batch, KVOps
from engine.backends.llama.prefix import PrefixPool
from engine.backends.llama.requests import CHAT, Request
from engine.log import get_logger, log

_log = get_logger("backend.llama")


class DecodeSteps:
    kv: KVOps
    config: LlamaConfig
    stats: LlamaStats
    prefixes: PrefixPool
    active: list[Request]
    _worker_q: dict[Any, deque[Request]]

    def _finish(
        self,
        req: Request,
        reason: FinishReason,
        *,
        text: str | None = None,
        error: str | None = None,
        release: bool = True,
        keep_session_kv: bool | None = None,
        choice_logprobs: tuple[float, ...] | None = None,
    ) -> None:
        raise NotImplementedError

    def _release(self, req: Request, *, keep_session_kv: bool) -> None:
        raise NotImplementedError

    def _drop(self, req: Request) -> None:
        raise NotImplementedError

    def _end_joint(self, req: Request) -> None:
        raise NotImplementedError

    def _step(self) -> None:
        """One decode over every active request: generation tokens first, then prefill chunks."""
        plan: list[tuple[Request, list[int], bool]] = []
        budget = self.kv.n_batch
        # root turns' prompts before worker prompts, then first come first served
        prefilling = sorted(
            (r for r in self.active if r.pending and not r.out), key=lambda r: (r.kind != CHAT, r.admitted_at)
        )
        if prefilling and not self.config.mix_prefill:
            req = prefilling[0]  # one request's prefill per decode: its rows never share a ubatch
            chunk = req.pending[:budget]
            plan.append((req, chunk, len(chunk) == len(req.pending)))
        else:
            generating = sorted((r for r in self.active if r.pending and r.out), key=lambda r: r.admitted_at)
            for req in generating[:budget]:
                plan.append((req, req.pending[:1], True))
            budget -= len(plan)
            if generating:  # chunked prefill: a long prompt must not stall the others' next token for long
                budget = min(budget, self.config.prefill_chunk)
            for req in prefilling:
                if budget <= 0:
                    break
                chunk = req.pending[:budget]
                plan.append((req, chunk, len(chunk) == len(req.pending)))
                budget -= len(chunk)
        if not plan:
            return
        batch = Batch()
        out_rows: list[tuple[Request, int]] = []
        for req, chunk, last in plan:
            pos = len(req.fed)
            joint_seq = req.slot.seq if req.joint_until and req.slot is not None else -1
            for j, t in enumerate(chunk):
                seqs = (req.seq, joint_seq) if pos + j < req.joint_until else (req.seq,)
                row = batch.add(t, pos + j, seqs, last and j == len(chunk) - 1)
            if last:
                out_rows.append((req, row))
        rc = self.kv.decode(batch)
        if rc == DECODE_NO_SLOT:
            self._preempt(plan, batch)
            return
        if rc != DECODE_OK:
            for req, _, _ in plan:
                self._finish(req, "error", error=f"llama_decode failed with code {rc}")
            return
        self._after_decode(plan, out_rows)

    def _after_decode(self, plan: list[tuple[Request, list[int], bool]], out_rows: list[tuple[Request, int]]) -> None:
        st = self.stats
        st.decode_calls += 1
        st.max_batch_seqs = max(st.max_batch_seqs, len(plan))
        st.max_batch_groups = max(st.max_batch_groups, len({r.group.gid for r, _, _ in plan}))
        st.max_batch_owners = max(st.max_batch_owners, len({repr(r.owner) for r, _, _ in plan}))
        for req, chunk, _ in plan:
            if len(req.out) == 0:
                st.prompt_tokens_decoded += len(chunk)
            self._fed(req, chunk)
        for req, row in out_rows:
            self._sample(req, row)

    def _fed(self, req: Request, chunk: list[int]) -> None:
        """Record that ``chunk`` (the next pending tokens of ``req``) is now in the KV cache."""
        if req.joint_until and req.slot is not None:
            k = max(0, min(len(chunk), req.joint_until - len(req.fed)))
            req.slot.tokens.extend(chunk[:k])
            self.stats.prefix_tokens_decoded += k
            if len(req.out) == 0:
                self.stats.prompt_tokens_decoded -= k
        req.fed.extend(chunk)
        del req.pending[: len(chunk)]
        if req.joint_until and len(req.fed) >= req.joint_until:
            self._end_joint(req)

    def _sample(self, req: Request, row: int) -> None:
        if req.cancelled:
            self._drop(req)
            return
        if req.choice_ids is not None:
            self._choose(req, row)
            return
        tok = self.kv.sample(req.sampler, row)
        req.out.append(tok)
        self.stats.generated_tokens += 1
        if self.kv.is_eog(tok):
            self._finish(req, "stop")
            return
        piece = self.kv.piece(tok)
        req.out_bytes.extend(piece)
        prev_chars = len(req.text)
        req.text += req.decoder.decode(piece)
        stop = req.params.stop
        if stop:
            look_from = max(0, prev_chars - max(map(len, stop)))
            hits = [p for p in (req.text.find(s, look_from) for s in stop if s) if p >= 0]
            if hits:
                self._finish(req, "stop", text=req.text[: min(hits)])
                return
        if len(req.out) >= req.params.max_tokens:
            self._finish(req, "length")
            return
        if req.stream is not None:
            hold = max(map(len, stop)) - 1 if stop else 0  # a stop string may be forming: do not show it yet
            upto = max(req.sent_chars, len(req.text) - hold)
            if upto > req.sent_chars:
                req.stream.put(req.text[req.sent_chars : upto])
                req.sent_chars = upto
        req.pending = [tok]

    def _choose(self, req: Request, row: int) -> None:
        """A scored request ends at its first reply position: each choice's probability, normalised over the
        choices, from the logits of the tokens that begin it (no sampling)."""
        assert req.choice_ids is not None
        scores = [_logsumexp(self.kv.token_logits(row, ids)) for ids in req.choice_ids]
        norm = _logsumexp(scores)
        logprobs = tuple(s - norm for s in scores)
        best = max(range(len(logprobs)), key=logprobs.__getitem__)
        req.out.append(req.choice_ids[best][0])
        self.stats.generated_tokens += 1
        self._finish(req, "stop", text=req.params.choices[best], choice_logprobs=logprobs)

    def _preempt(self, plan: list[tuple[Request, list[int], bool]], batch: Batch) -> None:
        """KV cache full: push the newest worker request back to its queue (it restarts later), or fail."""
        self.stats.preemptions += 1
        victims = [r for r, _, _ in plan if r.worker and r.kind != CHAT]  # a chat may have streamed text
        if len(plan) > 1 and victims:
            victim = max(victims, key=lambda r: r.admitted_at)
            self._release(victim, keep_session_kv=False)
            self._worker_q.setdefault(victim.owner, deque()).appendleft(victim)
            log(_log, "info", "kv cache full: request requeued", active=len(self.active))
            return
        self.prefixes.drop_idle()
        if self.kv.decode(batch) != DECODE_OK:  # nothing left to free
            for req, _, _ in plan:
                self._finish(req, "error", error="the KV cache is full even with nothing else in it")
            return
        out_rows: list[tuple[Request, int]] = []
        i = 0
        for req, chunk, last in plan:
            i += len(chunk)
            if last:
                out_rows.append((req, i - 1))
        self._after_decode(plan, out_rows)


def _logsumexp(xs: list[float]) -> float:
    top = max(xs)
    return top + math.log(sum(math.exp(x - top) for x in xs))
