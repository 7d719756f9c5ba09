"""Profiles: which families, sizes, methods and how many instances, with the models and limits that go with them.

* ``smoke`` (CI, well under two minutes): tiny instances of every family; the oracle and the baseline on all,
  ``base`` and ``rlm`` on one niah instance with the 135M test model as root and worker (the real engine, the
  real sandbox), short limits. The run fails when an oracle scores below 100 % or a baseline above its ceiling.
* ``quick`` (the sizes the targets name: needles at 8K, 1M and 10M tokens, aggregation at 32K, 100 pages, a
  40K-token source tree), 1 to 5 instances per family, ``base`` against ``rlm``; the root's window is 32K, and
  ``base`` reads all of it (cut from the middle); every run stops after 900 s (with its best partial answer).
  Reading 32K tokens costs a 1.5B root several minutes on 2 cores: expect about an hour and a half.
* ``ablate`` (one sitting, <= 60 minutes on a 2-core CPU with the default models): every family at its smallest
  size, ``base``, ``rlm``, ``rlm-no-sub`` and ``summary`` on the same instances, with the most instances the hour
  affords on the percentage families (niah, codeqa). Per instance at these sizes, on 2 cores: base ~15-60 s,
  summary ~20-70 s, rlm and rlm-no-sub ~15-40 s each, so ~70 s per 1K-token instance and ~200 s per 4K one:
  12 niah + 6 codeqa + 4 aggregate + 4 pairs + 6 multihop is about 53 minutes. Twelve right/wrong answers give a
  Wilson interval of at most +/-25 points (+/-20 or less at 0-1 or 11-12 right), six of at most +/-31 (+/-20 at
  0 or 6 right); +/-20 at any score needs about 24, which the hour does not hold next to the other families. The
  report marks every cell wider than +/-20 beside its number. ``ref-rlm`` is added with ``--methods`` (it needs the
  ``[ref]`` extra and serves the models with ``outcore serve``), on the first 2 instances of each family only:
  with the 1.5B root each reference run took 35 s to 5 min on 2 cores (measured 2026-12-04: the root answered the
  reference prompt with prose plans, never a ```repl``` block, and every iteration re-sends a longer history), so
  the hour holds about ten of them.
* ``full``: every size, 20 instances each, every method.
* ``general``: the general suite (:mod:`bench.tasks.general`, fourteen ``g-...`` families) on one split, ``dev``
  (the default: design and tune here) or ``test`` (report only; never tune on it). Three instances per family at
  modest sizes, ``rlm`` on all three, ``base`` on the first (a reference point), 300 s per run. Not measured yet:
  estimated from the quick profile's per-run times (base ~60 s, rlm ~20-60 s on lookups, 150-300 s on counts
  that label every item) at ~55-70 minutes for a split on a 2-core CPU with the default pair (42 rlm runs, 14
  base runs); ``-n 2`` brings it to ~40 minutes; every run at its 300 s cap would take ~4.5 h.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.methods import METHODS
from bench.tasks import family_names
from bench.tasks.general import BASELINE_CEILING as GENERAL_CEILING
from bench.tasks.general import DEFAULT_SIZES as GENERAL_SIZES
from bench.tasks.general import SPLITS
from engine.rlm import DEFAULT_ROOT, DEFAULT_WORKER

# A baseline scoring above this (0-1) on a family means a leak or a memorisable question (see bench.tasks).
BASELINE_CEILING = {"niah": 0.05, "aggregate": 0.5, "pairs": 0.05, "multihop": 0.2, "codeqa": 0.5, **GENERAL_CEILING}


@dataclass
class Profile:
    name: str
    families: list[str]
    sizes: dict[str, list[str]]  # family -> size labels
    methods: list[str]
    n: int
    root: str = DEFAULT_ROOT
    worker: str = DEFAULT_WORKER
    root_ctx: int = 8192
    worker_ctx: int = 8192
    base_ctx: int | None = None  # context tokens base/summary read at once (None: the root's whole window)
    max_wall_s: float = 600.0  # per instance and method
    n_gpu_layers: int | None = None  # None: the backend's default (all layers when llama.cpp has a GPU backend)
    rlm_limits: dict[str, Any] = field(default_factory=dict)
    # methods that run only on some families (smoke keeps the real-model runs short)
    method_families: dict[str, list[str]] = field(default_factory=dict)
    check_oracles: bool = False
    model_n: int | None = None  # instances per family and size for model methods (None: n)
    family_n: dict[str, int] = field(default_factory=dict)  # instances per size for some families (else n)
    method_n: dict[str, int] = field(default_factory=dict)  # at most this many instances per size for a method
    split: str | None = None  # the general suite's "dev" or "test" (None: the public families, no split)

    @property
    def result_name(self) -> str:
        """The name of the committed summary, ``bench/results/<result_name>.json``: a test split is the profile's."""
        return self.name if self.split in (None, "test") else f"{self.name}-{self.split}"

    def n_for(self, family: str) -> int:
        return self.family_n.get(family, self.n)

    def runs(self, family: str, method: str, index: int = 0) -> bool:
        only = self.method_families.get(method)
        if only is not None and family not in only:
            return False
        if method in self.method_n and index >= self.method_n[method]:
            return False
        return method in ("oracle", "baseline") or self.model_n is None or index < self.model_n


def _smoke() -> Profile:
    sizes = {"niah": ["1k"], "aggregate": ["1k"], "pairs": ["1k"], "multihop": ["10p"], "codeqa": ["4k"]}
    return Profile(
        name="smoke",
        families=list(family_names()),
        sizes=sizes,
        methods=["oracle", "baseline", "base", "rlm"],
        n=2,
        root="smollm2-135m",
        worker="smollm2-135m",
        root_ctx=4096,
        worker_ctx=4096,
        max_wall_s=30.0,
        rlm_limits={"max_root_turns": 2, "root_max_tokens": 160, "sub_max_tokens": 48, "max_sub_calls": 8},
        method_families={"rlm": ["niah"], "base": ["niah"]},
        check_oracles=True,
        model_n=1,
    )


def _quick() -> Profile:
    # the sizes the targets of the small-roots issue name (needles to 10M tokens, aggregation at 32K, 100 pages);
    # more instances where one run is cheap and a family's score is a percentage
    sizes = {
        "niah": ["8k", "1m", "10m"],
        "aggregate": ["32k"],
        "pairs": ["8k"],
        "multihop": ["100p"],
        "codeqa": ["40k"],
    }
    return Profile(
        name="quick",
        families=list(family_names()),
        sizes=sizes,
        methods=["oracle", "baseline", "base", "rlm"],
        n=1,
        family_n={"aggregate": 2, "multihop": 5, "codeqa": 4},
        root_ctx=32768,  # the 1.5B's trained window: base reads all of it
        max_wall_s=900.0,  # labelling the ~1,000 lines of a 32K aggregate window takes ~520 s on 2 cores
        rlm_limits={"max_root_turns": 6},
        check_oracles=True,
    )


def _ablate() -> Profile:
    # the smallest sizes, so that n (not the context length) is what the hour buys: the question here is whether
    # sub-calls and the REPL pay on each family, with intervals narrow enough to say so
    sizes = {"niah": ["1k"], "aggregate": ["1k"], "pairs": ["1k"], "multihop": ["10p"], "codeqa": ["4k"]}
    return Profile(
        name="ablate",
        families=list(family_names()),
        sizes=sizes,
        methods=["oracle", "baseline", "base", "rlm", "rlm-no-sub", "summary"],
        n=4,
        family_n={"niah": 12, "codeqa": 6, "multihop": 6},
        method_n={"ref-rlm": 2},  # see the module docstring: a reference run takes 1-5 min with the default root
        root_ctx=8192,
        max_wall_s=300.0,
        rlm_limits={"max_root_turns": 6},
        check_oracles=True,
    )


def _full() -> Profile:
    from bench.tasks import get_family

    fams = list(family_names())
    return Profile(
        name="full",
        families=fams,
        sizes={f: [s for s in get_family(f).sizes if s not in ("1k", "4k")] for f in fams},
        methods=list(METHODS),
        n=20,
        root_ctx=32768,
        max_wall_s=1800.0,
        check_oracles=True,
    )


def _general() -> Profile:
    # rlm on three instances per family, base on the first: the split's mean and interval are rlm's
    return Profile(
        name="general",
        families=list(GENERAL_SIZES),
        sizes={f: [s] for f, s in GENERAL_SIZES.items()},
        methods=["oracle", "baseline", "base", "rlm"],
        n=3,
        method_n={"base": 1},
        root_ctx=32768,  # base reads the root's whole window, as in quick
        max_wall_s=300.0,
        rlm_limits={"max_root_turns": 6},
        check_oracles=True,
        split="dev",
    )


def get(name: str, split: str | None = None) -> Profile:
    """The profile by name; ``split`` ("dev" or "test") applies to the general profile only."""
    makers = {"smoke": _smoke, "quick": _quick, "ablate": _ablate, "full": _full, "general": _general}
    if name not in makers:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(makers)}")
    prof = makers[name]()
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        if prof.split is None:
            raise ValueError(f"the {name} profile has no dev/test split (only the general profile has)")
        prof.split = split
    return prof
