"""Record families: a CSV group-by, JSON lines with a changing fact, staff records two hops apart, a table compared.

The distractors are built in: the region with the most orders overall is never the answer for the asked product,
a customer's earlier plans and a near-namesake's plan are in the log, the person's own office differs from the
manager's, and the two compared items sit among many rows with the same columns.
"""

from __future__ import annotations

import collections
import json
import random
import re
from datetime import date, datetime, timedelta
from typing import Any

from bench.tasks import Instance
from bench.tasks.general.common import CITIES, FIRST, LAST, PRODUCTS, Built, GeneralFamily, people

REGIONS = ("North", "South", "East", "West", "Central", "Coastal", "Alpine", "Lowlands")


class CsvArgmax(GeneralFamily):
    """``g-csv-argmax``: which region had the most orders of one product, over an orders CSV."""

    name = "g-csv-argmax"
    sizes = {"32k": 32_000, "256k": 256_000, "1m": 1_000_000}
    metric = "1 when the reply names the right region and no other"
    tags = {"format": "CSV", "answer_type": "name", "reasoning": "group-by and arg-max"}
    answer_tokens = 16
    phrasings = (
        "Which region had the most orders of {product}s? Answer with the region name only.",
        "Name the region with the largest number of {product} orders.",
        "In which region were {product}s ordered most often (by number of orders)?",
        "Looking only at {product} orders, tell me which region placed the most of them. Reply with one region.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        product = rng.choice(PRODUCTS)
        big, gold_region = rng.sample(REGIONS, 2)
        n_rows = max(60, chars // 34)
        for _ in range(50):
            rows = []
            for i in range(n_rows):
                r = big if rng.random() < 0.3 else rng.choice(REGIONS)
                p = product if rng.random() < 0.08 else rng.choice(PRODUCTS)
                if p == product and r == big and rng.random() < 0.6:
                    r = gold_region  # the busiest region overall orders this product less
                rows.append((10_000 + i, r, p, rng.randrange(1, 40)))
            gold = _argmax(rows, product)
            overall = collections.Counter(r for _, r, _, _ in rows).most_common(1)[0][0]
            if gold is not None and gold != overall:
                break
        else:
            raise ValueError("no unique arg-max in 50 draws")
        start = date(2025, 1, 1)
        lines = ["order_id,date,region,product,quantity"]
        lines += [f"{i},{(start + timedelta(days=i % 360)).isoformat()},{r},{p},{q}" for i, r, p, q in rows]
        return Built("\n".join(lines) + "\n", {"product": product}, gold, {"product": product},
                     [x for x in REGIONS if x != gold])  # fmt: skip

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        rows = [(0, r, p, int(q)) for _, _, r, p, q in (ln.split(",") for ln in context.splitlines()[1:])]
        return _argmax(rows, meta["product"]) or ""

    def guess(self, instance: Instance) -> str:
        """Regex-only and careless: the region with the most orders of any product."""
        regions = re.findall(r"^\d+,[\d-]+,(\w+),", instance.context, flags=re.MULTILINE)
        return collections.Counter(regions).most_common(1)[0][0]


def _argmax(rows: list[tuple[int, str, str, int]], product: str) -> str | None:
    top = collections.Counter(r for _, r, p, _ in rows if p == product).most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


PLANS = ("Starter", "Basic", "Plus", "Team", "Business", "Enterprise", "Growth", "Scale")


class JsonlLatest(GeneralFamily):
    """``g-jsonl-latest``: a customer's current plan after several changes, in an event log of JSON lines."""

    name = "g-jsonl-latest"
    sizes = {"32k": 32_000, "256k": 256_000, "1m": 1_000_000}
    metric = "1 when the reply names the latest plan and no superseded or other customer's plan"
    tags = {"format": "JSON lines", "answer_type": "name", "reasoning": "latest of several mentions"}
    answer_tokens = 16
    phrasings = (
        "What is {customer}'s current plan? Answer with the plan name only.",
        "Tell me which plan {customer} is on now, after all the changes in the log.",
        "Which plan does the customer {customer} have at present?",
        "After every change recorded here, {customer} is on which plan? Reply with the plan name.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        names = people(rng, 60)
        customer = names[0]
        first, last = customer.split(" ")
        near = [
            f"{first} {rng.choice([x for x in LAST if x != last])}",
            f"{rng.choice([x for x in FIRST if x != first])} {last}",
        ]
        names = [n for n in names if n not in near] + near
        n_events = max(40, chars // 105)
        ts0 = datetime(2024, 1, 1, 9) + timedelta(days=rng.randrange(365))
        events: list[dict[str, Any]] = []
        own = sorted(rng.sample(range(n_events), 4))
        history = rng.sample(PLANS, 4)
        for i in range(n_events):
            who = customer if i in own else rng.choice(names[1:])
            ev: dict[str, Any] = {"ts": (ts0 + timedelta(minutes=97 * i)).isoformat() + "Z", "customer": who}
            if who == customer:
                ev.update(event="plan_changed", plan=history[own.index(i)])
            elif rng.random() < 0.5:
                ev.update(event="plan_changed", plan=rng.choice(PLANS))
            else:
                ev.update(event="address_changed", city=rng.choice(CITIES))
            events.append(ev)
        for k, n in enumerate(near):  # near-namesakes change plan after the customer's last change
            events.append({"ts": (ts0 + timedelta(minutes=97 * (n_events + k))).isoformat() + "Z",
                           "customer": n, "event": "plan_changed", "plan": rng.choice([p for p in PLANS if p != history[-1]])})  # fmt: skip
        text = "".join(json.dumps(e) + "\n" for e in events)
        distract = [p for p in PLANS if p != history[-1]]
        return Built(text, {"customer": customer}, history[-1], {"customer": customer}, distract)

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        latest = ("", "")
        for line in context.splitlines():
            e = json.loads(line)
            if e["customer"] == meta["customer"] and e["event"] == "plan_changed" and e["ts"] > latest[0]:
                latest = (e["ts"], e["plan"])
        return latest[1]

    def guess(self, instance: Instance) -> str:
        """Careless: the customer's first plan in the log (a superseded one)."""
        for line in instance.context.splitlines():
            e = json.loads(line)
            if e["customer"] == instance.meta["customer"] and e["event"] == "plan_changed":
                return str(e["plan"])
        return ""


DEPTS = ("Finance", "Legal", "Sales", "Research", "Support", "Operations", "Design", "Security")
TITLES = ("Analyst", "Engineer", "Coordinator", "Specialist", "Associate", "Consultant")


class StaffTwoHop(GeneralFamily):
    """``g-staff-2hop``: the office city of a person's line manager; the manager is named by staff id only."""

    name = "g-staff-2hop"
    sizes = {"32k": 32_000, "256k": 256_000}
    metric = "1 when the reply names the manager's office city and no other city"
    tags = {"format": "records", "answer_type": "name", "reasoning": "two hops"}
    answer_tokens = 16
    phrasings = (
        "In which city is the office of {person}'s line manager? Answer with the city only.",
        "Find the office city of the person {person} reports to.",
        "Where (which city) does {person}'s line manager have their office?",
        "{person} has a line manager. Give the city of that manager's office, nothing else.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        n = max(30, chars // 105)
        names = people(rng, n)
        ids = [f"E{k}" for k in rng.sample(range(1000, 9999), n)]
        office = [rng.choice(CITIES) for _ in range(n)]
        managers = list(range(min(12, n // 3)))
        boss = [rng.choice([m for m in managers if m != i] or [0]) for i in range(n)]
        target = rng.randrange(len(managers), n)
        mgr = boss[target]
        if office[target] == office[mgr]:
            office[target] = rng.choice([c for c in CITIES if c != office[mgr]])
        blocks = []
        order = list(range(n))
        rng.shuffle(order)
        for i in order:
            blocks.append(f"Name: {names[i]}\nStaff ID: {ids[i]}\nDepartment: {rng.choice(DEPTS)}\n"
                          f"Title: {rng.choice(TITLES)}\nLine manager: {ids[boss[i]]}\nOffice: {office[i]}\n")  # fmt: skip
        distract = sorted({office[target]} | {office[i] for i in range(n) if boss[i] == mgr} - {office[mgr]})
        return Built("\n".join(blocks), {"person": names[target]}, office[mgr], {"person": names[target]}, distract)

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        recs = [dict(ln.split(": ", 1) for ln in b.splitlines() if ": " in ln) for b in context.split("\n\n")]
        me = next(r for r in recs if r.get("Name") == meta["person"])
        boss = next(r for r in recs if r.get("Staff ID") == me["Line manager"])
        return boss["Office"]

    def guess(self, instance: Instance) -> str:
        """Careless one hop: the asked person's own office."""
        m = re.search(r"Name: " + re.escape(instance.meta["person"]) + r"\n(?:.*\n)*?Office: (\w+)", instance.context)
        return m.group(1) if m else ""


class TableCompare(GeneralFamily):
    """``g-table-compare``: which of two projects started earlier or had the larger budget, in a Markdown table."""

    name = "g-table-compare"
    sizes = {"32k": 32_000, "256k": 256_000}
    metric = "1 when the reply names the right one of the two projects (and not both)"
    tags = {"format": "tables", "answer_type": "name", "reasoning": "comparison"}
    answer_tokens = 16
    phrasings = (
        "Which project {verb}, {a} or {b}? Answer with the project name only.",
        "Between {a} and {b}, tell me which one {verb}.",
        "Of the projects {a} and {b}, which {verb}?",
        "Compare {a} with {b} and name the one that {verb}. Reply with the name only.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        words = ("Aurora Beacon Cinder Delta Ember Falcon Granite Harbor Iris Juniper Kestrel Lumen Meridian Nimbus "
                 "Onyx Polaris Quartz Raven Sierra Tundra Umbra Vortex Willow Zephyr").split()  # fmt: skip
        n = max(20, chars // 57)
        names = [f"{w} {last}" for w in words for last in LAST]
        rng.shuffle(names)
        names += [f"{nm} {r}" for r in ("II", "III", "IV", "V") for nm in names]  # large tables: sequels
        names = names[:n]
        rows = []
        for nm in names:
            start = date(2019, 1, 1) + timedelta(days=rng.randrange(2000))
            rows.append((nm, start, rng.randrange(20, 5000) * 1000, rng.choice(DEPTS), rng.randrange(2, 60)))
        i, j = rng.sample(range(len(rows)), 2)
        by_budget = index % 4 < 2
        key = (lambda r: r[2]) if by_budget else (lambda r: -r[1].toordinal())
        while key(rows[i]) == key(rows[j]):
            rows[j] = (rows[j][0], rows[j][1] + timedelta(days=1), rows[j][2] + 1000, rows[j][3], rows[j][4])
        win = i if key(rows[i]) > key(rows[j]) else j
        first, second = (win, i + j - win) if index % 2 == 0 else (i + j - win, win)  # gold first on even indices
        lines = ["| project | start date | budget (EUR) | department | team size |", "|---|---|---|---|---|"]
        lines += [f"| {r[0]} | {r[1].isoformat()} | {r[2]:,} | {r[3]} | {r[4]} |" for r in rows]
        verb = "had the larger budget" if by_budget else "started earlier"
        slots = {"a": rows[first][0], "b": rows[second][0], "verb": verb}
        meta = {"a": rows[first][0], "b": rows[second][0], "by": "budget" if by_budget else "start"}
        return Built("\n".join(lines) + "\n", slots, rows[win][0], meta, [rows[i + j - win][0]])

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        cells = {}
        for ln in context.splitlines()[2:]:
            c = [x.strip() for x in ln.strip("|").split("|")]
            cells[c[0]] = (int(c[2].replace(",", "")), c[1])
        a, b = cells[meta["a"]], cells[meta["b"]]
        if meta["by"] == "budget":
            return meta["a"] if a[0] > b[0] else meta["b"]
        return meta["a"] if a[1] < b[1] else meta["b"]

    def guess(self, instance: Instance) -> str:
        """Closed-book: the first project the question names (chance: half)."""
        return str(instance.meta["a"])
