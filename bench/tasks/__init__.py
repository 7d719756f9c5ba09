"""Task families: each generates instances deterministically, scores answers and ships an oracle and a baseline.

Why an oracle and a baseline per family: an oracle that reads only the generated context (plus the hidden labels
the generator knows by construction) must score 100 %, which proves every gold answer is derivable from the
context; a closed-book or regex-only baseline must stay near chance, which catches label leaks (a class name
written into the entries) and questions answerable from memory.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench import tokens


@dataclass
class Instance:
    """One benchmark item. ``context`` is what a method reads; ``meta`` is hidden from every method but the oracle."""

    family: str
    size: str
    index: int
    context: str
    question: str
    gold: Any
    input_tokens: int  # exact cl100k tokens of ``context``
    answer_tokens: int = 64  # generation budget a direct answer needs (pairs lists need more)
    meta: dict[str, Any] = field(default_factory=dict)
    # the same context split into documents (multihop pages), handed to an RLM as a list so doc_titles() works;
    # "\n\n".join(documents) + "\n\n" == context
    documents: list[str] | None = None
    split: str | None = None  # the general suite's dev/test split (None: a public family)

    @property
    def id(self) -> str:
        return instance_id(self.family, self.size, self.index, self.split)


def instance_id(family: str, size: str, index: int, split: str | None = None) -> str:
    """``family/size/index``, or ``family/split/size/index`` for a split family (dev and test never share an id)."""
    return f"{family}/{size}/{index}" if split is None else f"{family}/{split}/{size}/{index}"


@dataclass(frozen=True)
class Score:
    """``value`` in [0, 1] is the family's primary metric; ``extra`` holds secondary ones (e.g. exact match)."""

    value: float
    extra: dict[str, float] = field(default_factory=dict)


class Family(Protocol):
    name: str
    sizes: dict[str, int]  # size label -> target (tokens; pages for multihop; characters for the general suite)
    metric: str  # what ``Score.value`` means, for the report

    def generate(self, size: str, index: int, seed: str) -> Instance: ...

    def score(self, instance: Instance, answer: str) -> Score: ...

    def oracle(self, instance: Instance) -> str: ...

    def baseline(self, instance: Instance) -> str: ...


def rng_for(*parts: object) -> random.Random:
    """A random generator seeded from a string key, so an instance never depends on generation order."""
    key = "/".join(str(p) for p in parts)
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def fit_units(units: list[str], target: int, sep: str = "", reserve: int = 0) -> list[str]:
    """The longest prefix of ``units`` whose joined text is about ``target`` cl100k tokens (minus ``reserve``).

    Counts each unit once (units are joined at newline or space boundaries, where counts add up), so building a
    1M-token context costs one pass of the tokenizer.
    """
    out: list[str] = []
    total = reserve
    sep_tokens = tokens.count(sep) if sep else 0
    for u in units:
        n = tokens.count(u) + sep_tokens
        if out and total + n > target:
            break
        out.append(u)
        total += n
    return out


class SplitFamily(Family, Protocol):
    """A family whose phrasings and seeds are split into ``dev`` and ``test`` (the general suite)."""

    def generate_split(self, size: str, index: int, seed: str, split: str) -> Instance: ...


def family_names() -> tuple[str, ...]:
    """The public families (the paper's benchmarks); the general suite's are in :func:`all_family_names`."""
    return ("niah", "aggregate", "pairs", "multihop", "codeqa")


def all_family_names() -> tuple[str, ...]:
    """Every family a profile may name: the public ones, then the general suite's (``g-...``)."""
    from bench.tasks.general import general_names

    return family_names() + general_names()


_FAMILIES: dict[str, Family] = {}


def get_family(name: str) -> Family:
    """The family object by name, built once per process (each loads its source data once, lazily)."""
    if name.startswith("g-"):
        from bench.tasks.general import get_general

        return get_general(name)
    if name not in family_names():
        raise ValueError(f"unknown family {name!r}; choose from {', '.join(all_family_names())}")
    if name not in _FAMILIES:
        import importlib

        factory: Callable[[], Family] = importlib.import_module(f"bench.tasks.{name}").make_family
        _FAMILIES[name] = factory()
    return _FAMILIES[name]


def generate(family: Family, size: str, index: int, seed: str, split: str | None = None) -> Instance:
    """An instance of ``family``; with a ``split``, from that split's phrasings and seed stream."""
    if split is None:
        return family.generate(size, index, seed)
    gen = getattr(family, "generate_split", None)
    if gen is None:
        raise ValueError(f"family {family.name} has no dev/test split")
    inst: Instance = gen(size, index, seed, split)
    return inst
