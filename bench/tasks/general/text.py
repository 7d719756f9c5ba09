"""Prose families: support tickets judged by meaning, a stack of contracts, and versioned Markdown docs.

Why the ticket wording is varied: a count that needs semantic judgement must not be answerable by a keyword. About
a quarter of the tickets report a payment problem, most of them without the words "payment" or "charge", and a
share of the others use those words about something that went fine; the hidden per-ticket labels make the oracle
exact, and the keyword count (the baseline) misses by far more than the tolerance.
"""

from __future__ import annotations

import random
import re
from typing import Any

from bench.tasks import Instance
from bench.tasks.general.common import CITIES, LAST, PRODUCTS, Built, GeneralFamily, person

POSITIVE = (
    "I was billed twice for my {p} order this month.",
    "My card was declined at checkout even though it works everywhere else.",
    "The refund for the returned {p} still has not reached my account after three weeks.",
    "There is an extra fee on my invoice that nobody told me about.",
    "You took the money for my subscription but the order shows as unpaid.",
    "The charge on my statement is higher than the price shown for the {p}.",
    "My payment failed with error 402 and now my account is locked.",
    "I cancelled in time but was still debited for the next month.",
    "The bank transfer I sent for invoice {n} is not showing as received.",
    "Why was I charged in dollars when my account is in euros?",
)
NEGATIVE = (
    "The payment went through fine, but the {p} arrived scratched.",
    "How do I change the delivery address for order {n}?",
    "The app crashes when I open the settings page.",
    "Can you add a dark mode to the dashboard?",
    "Thanks, the charge looked right; I only want to know when the {p} ships.",
    "The {p} manual is missing from the box.",
    "I would like to upgrade to a bigger plan next quarter, what are the options?",
    "My password reset e-mail never arrives.",
    "Tracking for order {n} has not updated in four days.",
    "Please send me a copy of last year's payment receipts for my records.",
    "The {p} is louder than the one I had before, is that normal?",
    "Could you confirm the warranty period for the {p}?",
    "The charger for the {p} is missing from the package.",
    "Is there a charge for express shipping to {c}?",
    "Payment confirmed, thank you; I only need the delivery window for {c}.",
    "I'd like to switch my payment method to bank transfer from next month.",
)
_KEYWORD = re.compile(r"payment|charge", re.IGNORECASE)


class TicketCount(GeneralFamily):
    """``g-ticket-count``: how many support tickets report a payment problem, worded many ways."""

    name = "g-ticket-count"
    sizes = {"32k": 32_000, "128k": 128_000}
    metric = "count: full credit within 10 % of the truth, then 0.75 per ticket beyond"
    tags = {"format": "support tickets", "answer_type": "number", "reasoning": "semantic count"}
    answer_tokens = 16
    phrasings = (
        "In how many of these support tickets does the customer report a problem with a payment or a charge? "
        "Answer with the number only.",
        "Count the tickets in which the customer has a problem with paying, being charged or getting money back.",
        "How many tickets describe a billing or payment problem?",
        "Tell me the number of support tickets that report something wrong with a payment, a charge or a refund. "
        "Reply with a number.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        rate = rng.uniform(0.2, 0.3)
        lines, labels = [], {}
        total = 0
        k = 0
        while total < chars:
            tid = f"T-{10_000 + k * 7 + rng.randrange(7)}"
            pos = rng.random() < rate
            text = rng.choice(POSITIVE if pos else NEGATIVE).format(
                p=rng.choice(PRODUCTS), n=rng.randrange(1000, 9999), c=rng.choice(CITIES)
            )
            line = f"#{tid} | {person(rng)} | {text}"
            lines.append(line)
            labels[tid] = pos
            total += len(line) + 1
            k += 1
        gold = sum(labels.values())
        return Built("\n".join(lines) + "\n", {}, gold, {"labels": labels, "tolerance": 0.1})

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        ids = re.findall(r"^#(T-\d+) \|", context, flags=re.MULTILINE)
        return str(sum(1 for t in ids if meta["labels"][t]))

    def guess(self, instance: Instance) -> str:
        """Regex-only: the tickets that say "payment" or "charge"."""
        return str(sum(1 for ln in instance.context.splitlines() if _KEYWORD.search(ln)))


CLAUSES = (
    "Either party may terminate this agreement with {d} days' written notice.",
    "This agreement may be terminated by either party upon {d} days prior written notice to the other.",
    "Termination requires a notice period of {d} days, given in writing.",
    "A party wishing to end this contract shall give not less than {d} days' notice.",
)
COMPANY_A = tuple(a + b for a in ("North", "Blue", "Iron", "Silver", "Oak", "Red", "Clear", "High", "Stone", "Bright",
                                   "Green", "West") for b in ("wind", "peak", "bridge", "field", "gate", "water", "hill",
                                   "brook", "ridge", "haven"))  # fmt: skip
COMPANY_B = ("Logistics", "Analytics", "Foods", "Textiles", "Energy", "Robotics", "Media", "Pharma", "Freight",
             "Software", "Minerals", "Optics")  # fmt: skip
NOTICE = (14, 21, 45, 60, 75, 90, 120, 180)


class ContractLookup(GeneralFamily):
    """``g-contract-lookup``: the notice period (days) of the contract with one party, among many contracts."""

    name = "g-contract-lookup"
    sizes = {"32k": 32_000, "256k": 256_000, "512k": 512_000}
    metric = "exact number of days"
    tags = {"format": "contracts", "answer_type": "number", "reasoning": "lookup"}
    answer_tokens = 16
    phrasings = (
        "In the contract with {party}, how many days of notice are needed to terminate? Answer with the number of days.",
        "Find the termination notice period, in days, of the agreement with {party}.",
        "How long a notice (in days) does the contract with {party} require for termination?",
        "For the agreement signed with {party}, give the number of days' notice required to terminate it.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        parties = list(dict.fromkeys(f"{a} {b}" for a in COMPANY_A for b in COMPANY_B))
        rng.shuffle(parties)
        n = min(len(parties), max(8, chars // 370))
        chosen = parties[:n]
        target = chosen[rng.randrange(n)]
        days = {p: rng.choice(NOTICE) for p in chosen}
        near = [
            p
            for p in chosen
            if p != target and (p.split()[0] == target.split()[0] or p.split()[1] == target.split()[1])
        ]
        for p in near:  # near-namesakes never share the asked contract's notice period
            while days[p] == days[target]:
                days[p] = rng.choice(NOTICE)
        docs = []
        for k, p in enumerate(chosen):
            docs.append(
                f"CONTRACT C-{2000 + k}\nParties: {p} Ltd. and Outcore Supply GmbH\n"
                f"Effective date: 2024-{rng.randrange(1, 13):02d}-01\nTerm: {rng.choice((12, 24, 36))} months\n"
                f"Payment: invoices are payable within 30 days of receipt.\n"
                f"Cure period: a breach must be remedied within {rng.choice((10, 15, 20))} days of notice.\n"
                f"Termination: {rng.choice(CLAUSES).format(d=days[p])}\n"
                f"Governing law: the laws of {rng.choice(CITIES)}.\n"
            )
        return Built("\n".join(docs), {"party": target}, days[target], {"party": target, "tolerance": 0.0})

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        for doc in context.split("\n\n"):
            if f"Parties: {meta['party']} Ltd." in doc:
                m = re.search(r"^Termination: .*?(\d+) days", doc, flags=re.MULTILINE)
                return m.group(1) if m else ""
        return ""

    def guess(self, instance: Instance) -> str:
        """Closed-book: the most common notice period in contracts (30 days), never used here."""
        return "30"


FEATURES = ("offline sync", "single sign-on", "audit logging", "custom webhooks", "two-factor login", "bulk export",
            "role-based access", "dark mode", "API rate limits", "data residency", "scheduled reports",
            "IP allow-listing", "SCIM provisioning", "end-to-end encryption")  # fmt: skip
YES = ("{f} is supported.", "Supported: {f}.", "{f}: available in this release.", "This version adds {f}.")
NO = ("{f} is not supported.", "Not supported: {f}.", "{f}: not available in this release.",
      "{f} was removed in this version.")  # fmt: skip


class DocsYesNo(GeneralFamily):
    """``g-docs-yesno``: is a feature supported in one version, per that version's section of product docs."""

    name = "g-docs-yesno"
    sizes = {"32k": 32_000, "256k": 256_000}
    metric = "1 for the right yes/no"
    tags = {"format": "Markdown documents", "answer_type": "yes/no", "reasoning": "lookup"}
    answer_tokens = 8
    phrasings = (
        "Is {feature} supported in version {version}? Reply yes or no.",
        "Tell me whether version {version} supports {feature}.",
        "Does version {version} support {feature}?",
        "According to the docs, {feature} in version {version}: supported or not? Reply yes or no.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        n = max(6, chars // 610)
        versions = [f"{major}.{minor}" for major in range(1, 100) for minor in range(0, 10)][:n]
        status = {v: {f: rng.random() < 0.5 for f in FEATURES} for v in versions}
        version, feature = rng.choice(versions), rng.choice(FEATURES)
        want = index % 2 == 0  # yes on even indices: balanced
        status[version][feature] = want
        k = versions.index(version)
        for v in versions[max(0, k - 1) : k + 2]:  # the neighbouring versions say the opposite
            if v != version:
                status[v][feature] = not want
        secs = []
        for v in versions:
            lines = [f"## Version {v}", "", f"Released {rng.choice(('spring', 'summer', 'autumn', 'winter'))} build "
                     f"{rng.randrange(100, 999)}. Notes from the {rng.choice(LAST)} team.", ""]  # fmt: skip
            for f in rng.sample(FEATURES, len(FEATURES)):
                phrase = rng.choice(YES if status[v][f] else NO).format(f=f)
                lines.append("- " + phrase[0].upper() + phrase[1:])
            secs.append("\n".join(lines) + "\n")
        context = "# Product documentation\n\n" + "\n".join(secs)
        return Built(context, {"feature": feature, "version": version}, "yes" if want else "no",
                     {"feature": feature, "version": version})  # fmt: skip

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        sec = context.split(f"## Version {meta['version']}\n", 1)[1].split("\n## ", 1)[0]
        f = meta["feature"]
        for ln in sec.splitlines():
            text = ln[2:]
            if text.lower().startswith(f.lower()) or f in text:
                negs = {x.format(f=f).lower() for x in NO}
                return "no" if text.lower() in negs else "yes"
        return ""

    def guess(self, instance: Instance) -> str:
        """Closed-book: always "yes" (chance: half)."""
        return "yes"
