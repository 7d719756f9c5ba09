"""What the scheduler queues: one request per prompt, grouped by the submit call it came from.

A request is created in the caller's thread, handed to the decode thread, and finished there exactly once
(``result`` set, ``done`` set). Cancellation may also come from a third thread (the token's callback): it only sets
flags and wakes the caller; the decode thread frees the request's sequence and sampler at its next step.
"""

from __future__ import annotations

import codecs
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from engine.backends.base import Generation, SamplingParams

CHAT = "chat"
BATCH = "batch"


@dataclass
class Group:
    """One submit call (a batch or a chat): its requests share the prefix held in a prefix sequence."""

    gid: int
    shared: list[int]  # tokens to hold in a prefix sequence for this group (may be empty)
    sys_len: int  # leading tokens of ``shared`` that are the system prompt (persisted to disk)
    pre_cached: int | None = None  # tokens of ``shared`` already in KV when the group's first request started


@dataclass
class Request:
    tokens: list[int]
    params: SamplingParams
    group: Group
    kind: str = BATCH  # CHAT requests are admitted before BATCH ones
    owner: Any = None  # the run this request belongs to (round-robin key)
    session: str | None = None
    stream: queue.SimpleQueue[str | None] | None = None  # text deltas for on_text; None ends the stream
    t0: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Generation | None = None
    cancelled: bool = False  # set by the cancel callback (any thread); the decode thread drops the request
    # scheduler state (decode thread only)
    seq: int = -1
    fed: list[int] = field(default_factory=list)  # tokens whose KV is in ``seq``
    pending: list[int] = field(default_factory=list)  # tokens still to decode
    reserved: int = 0  # KV cells this request may occupy beyond shared ones
    cached: int = 0
    sampler: Any = None
    out: list[int] = field(default_factory=list)
    out_bytes: bytearray = field(default_factory=bytearray)
    text: str = ""  # the reply decoded so far (complete UTF-8 characters only)
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    sent_chars: int = 0  # characters of the reply already streamed
    admitted_at: int = 0
    slot: Any = None  # the prefix slot this request took its shared tokens from (or fills, when joint)
    # positions below this also go into ``slot``'s sequence: the group's shared prefix is computed in the same
    # decode as this request's own tokens (see Scheduler._prepare_joint)
    joint_until: int = 0
    # with SamplingParams.choices: per choice, the first-token ids that count for it; the request ends at its
    # first position with the choices scored from the logits (see LlamaBackend._scored)
    choice_ids: list[list[int]] | None = None

    @property
    def worker(self) -> bool:
        """Takes one of the ``n_parallel`` generation slots (batch items and session-less chats)."""
        return self.session is None
