"""The general suite: fourteen synthetic families a user's long-context questions look like, with a dev/test split.

Why it exists: the public families (niah, aggregate, pairs, multihop, codeqa) are what the engine's help layer was
fitted to; a mechanism that only helps there is fitted to their surface. These families vary every axis a user
varies -- format (log lines, CSV, JSON lines, records, tables, support tickets, contracts, Markdown documents,
e-mails, chat transcripts, source code under four header styles), phrasing (four per family: questions, requests
that do not begin with a question word, with and without an answer-format instruction), answer type (number, name,
date, list, yes/no, code literal) and reasoning (lookup, code-decidable count and list, semantic count, group-by and
arg-max, two hops, the latest of several mentions, comparison). Each family's ``tags`` say which.

Everything is generated offline from a seed (no network, no model, no data files); a family's largest size builds in
a second or two. Sizes are in characters (``32k`` is about 32,000 characters, ~8K tokens).

The split -- read this before tuning anything:

* ``dev``: phrasings ``dev_phrasings`` (the first two of each family) and the seed stream ``(seed, "dev", ...)``;
* ``test``: the other phrasings and the seed stream ``(seed, "test", ...)``.

Design and tune on ``dev`` only. **Never use the ``test`` split to tune anything** -- not a prompt, a threshold, a
heuristic's cut-off nor a worked example; do not read its questions or traces while developing. It is run once per
change to report a number (``outcore bench --profile general --split test``), which is what ``test_mean`` in
``bench/results/general.json`` means. A heuristic that needs numbers quotes dev numbers.

Scoring, per answer type (the rules live in :mod:`bench.tasks.general.common`): numbers exact with 0.75 per unit
off (OOLONG's rule), except the semantic count, which gives full credit within 10 % of the truth; names and code
literals match after normalisation (names: case, punctuation and articles; literals: quote style), and a reply
that also names a near-miss distractor the generator planted scores 0; dates compare month and day (and the year
when the reply gives one); lists score set F1; yes/no the first yes or no.
"""

from __future__ import annotations

from bench.tasks.general.code import CodeCaller, CodeDefault
from bench.tasks.general.common import SPLITS, GeneralFamily
from bench.tasks.general.logs import ListIds, LogCount, LogNeedle
from bench.tasks.general.messages import ChatWho, EmailDate
from bench.tasks.general.records import CsvArgmax, JsonlLatest, StaffTwoHop, TableCompare
from bench.tasks.general.text import ContractLookup, DocsYesNo, TicketCount

__all__ = ["SPLITS", "GeneralFamily", "general_names", "get_general", "BASELINE_CEILING", "DEFAULT_SIZES"]

_CLASSES: tuple[type[GeneralFamily], ...] = (
    LogNeedle, LogCount, TicketCount, CsvArgmax, JsonlLatest, StaffTwoHop, ContractLookup, EmailDate, ChatWho,
    CodeDefault, CodeCaller, DocsYesNo, TableCompare, ListIds,
)  # fmt: skip
_BY_NAME: dict[str, GeneralFamily] = {}

# A baseline scoring above this (0-1) means a leak or a question answerable without reading (see bench.tasks).
# Yes/no and two-way comparisons have a chance level of one half; the regex-only caller guess one third. A number
# scored 0.75 per unit off gives a closed-book guess partial credit: the contract guess of 30 days scores 0.75^9 =
# 0.075 when the period is 21, the nearest one generated (seen on seed v7, whose two test instances both were 21).
BASELINE_CEILING = {
    "g-log-needle": 0.05, "g-log-count": 0.2, "g-ticket-count": 0.2, "g-csv-argmax": 0.05, "g-jsonl-latest": 0.05,
    "g-staff-2hop": 0.1, "g-contract-lookup": 0.08, "g-email-date": 0.1, "g-chat-who": 0.15,
    "g-code-default": 0.4, "g-code-caller": 0.5, "g-docs-yesno": 0.6, "g-table-compare": 0.6, "g-list-ids": 0.2,
}  # fmt: skip

# The size each family runs at in the ``general`` profile: modest where a method must read every item, larger where
# one line decides (the needle-like families).
DEFAULT_SIZES = {
    "g-log-needle": "256k", "g-log-count": "32k", "g-ticket-count": "32k", "g-csv-argmax": "32k",
    "g-jsonl-latest": "32k", "g-staff-2hop": "32k", "g-contract-lookup": "256k", "g-email-date": "32k",
    "g-chat-who": "32k", "g-code-default": "32k", "g-code-caller": "32k", "g-docs-yesno": "32k",
    "g-table-compare": "32k", "g-list-ids": "32k",
}  # fmt: skip


def general_names() -> tuple[str, ...]:
    return tuple(c.name for c in _CLASSES)


def get_general(name: str) -> GeneralFamily:
    """The general family by name (``g-...``), built once per process."""
    if name not in _BY_NAME:
        by = {c.name: c for c in _CLASSES}
        if name not in by:
            raise ValueError(f"unknown general family {name!r}; choose from {', '.join(by)}")
        _BY_NAME[name] = by[name]()
    return _BY_NAME[name]
