"""Log-line families: a needle among thousands of service log lines, a count code decides, and a list of ids.

Each context is a server log (or an order ledger) whose distractors are of the same shape: other vaults whose names
share a word with the asked one, the generic words of the question on unrelated lines, failed logins on the days
around the asked one, and orders that meet one of the two conditions only.
"""

from __future__ import annotations

import random
import re
from datetime import date, datetime, timedelta
from typing import Any

from bench.tasks import Instance
from bench.tasks.general.common import ANIMALS, CITIES, COLOURS, LAST, MONTHS, Built, GeneralFamily, fill

SERVICES = ("api-gw", "billing", "auth", "search", "vault-gw", "scheduler", "mailer", "cache")
NOISE = (
    "access log rotated (size={n} KB)",
    "request served in {n} ms status=200",
    "cache misses: {n} over 5 min",
    "access granted to role=reader for {n} s",
    "worker pool resized to {n}",
    "code path deprecated: legacy handler hit {n} times",
    "vault lease renewed for {n} s",
    "health check ok after {n} ms",
)


def _stamp(lines: list[str], start: datetime) -> list[str]:
    """Each line prefixed with an ISO timestamp, in order (a log is written as time goes by)."""
    step = max(1.0, 86_400 * 3 / max(1, len(lines)))  # the whole log spans about three days
    return [f"{(start + timedelta(seconds=int(k * step))).isoformat()}Z {ln}" for k, ln in enumerate(lines)]


def _code(rng: random.Random) -> str:
    abc = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"{rng.choice(abc)}{rng.choice(abc)}-{rng.randrange(10_000, 99_999)}-{rng.choice(abc)}{rng.choice(abc)}"


class LogNeedle(GeneralFamily):
    """``g-log-needle``: the access code set for one vault, in one line among thousands of log lines."""

    name = "g-log-needle"
    sizes = {"32k": 32_000, "256k": 256_000, "2m": 2_000_000, "4m": 4_000_000}
    metric = "1 when the reply is the vault's code and names no other vault's code"
    tags = {"format": "log lines", "answer_type": "code literal", "reasoning": "lookup"}
    answer_tokens = 24
    phrasings = (
        "What is the access code assigned to the {vault} vault? Answer with the code only.",
        "Find the access code that was set for the {vault} vault in these logs.",
        "Which access code does the {vault} vault have?",
        "The logs record an access code for the {vault} vault. Reply with that code and nothing else.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        colour, animal = rng.choice(COLOURS), rng.choice(ANIMALS)
        others = [(colour, a) for a in rng.sample([a for a in ANIMALS if a != animal], 3)]
        others += [(c, animal) for c in rng.sample([c for c in COLOURS if c != colour], 3)]
        codes = {(colour, animal): _code(rng), **{o: _code(rng) for o in others}}
        start = datetime(2025, 1, 1) + timedelta(days=rng.randrange(300), seconds=rng.randrange(86_400))
        fixed = [
            (rng.randrange(50, 950), f"INFO vault-gw: access code for the {c} {a} vault set to {v}")
            for (c, a), v in codes.items()
        ]

        def line(r: random.Random, i: int) -> str:
            svc = r.choice(SERVICES)
            msg = r.choice(NOISE).format(n=r.randrange(2, 5000))
            return f"{r.choice(('INFO', 'INFO', 'DEBUG', 'WARN'))} {svc}: {msg}"

        lines = _stamp(fill(rng, int(chars * 0.7), line, fixed), start)  # a stamp adds ~30 %
        vault = f"{colour} {animal}"
        return Built(
            "\n".join(lines) + "\n",
            {"vault": vault},
            codes[(colour, animal)],
            {"vault": vault},
            [v for k, v in codes.items() if k != (colour, animal)],
        )

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        m = re.search(r"access code for the " + re.escape(meta["vault"]) + r" vault set to (\S+)", context)
        return m.group(1) if m else ""

    def guess(self, instance: Instance) -> str:
        """Closed-book: a code of the right shape drawn from the question."""
        return _code(random.Random(instance.question))


class LogCount(GeneralFamily):
    """``g-log-count``: distinct users with a failed login on one day; a regex and a set decide it."""

    name = "g-log-count"
    sizes = {"32k": 32_000, "256k": 256_000, "1m": 1_000_000}
    metric = "exact count, 0.75 per item off (OOLONG's rule)"
    tags = {"format": "log lines", "answer_type": "number", "reasoning": "code-decidable count"}
    answer_tokens = 16
    phrasings = (
        "How many distinct users had at least one failed login on {day_iso}? Answer with the number only.",
        "Count the distinct users with a failed login on {day_long}.",
        "On {day_long}, how many different users failed to log in at least once?",
        "Give the number of distinct users who had one or more failed logins on {day_iso}. Reply with a number.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        day0 = date(2025, 1, 1) + timedelta(days=rng.randrange(300))
        days = [day0 + timedelta(days=k) for k in range(5)]
        target = days[2]
        users = [f"{n.lower()}{rng.randrange(10, 99)}" for n in rng.sample(LAST, 40)]
        events = ("login failed", "login failed", "login ok", "login ok", "login ok", "password reset failed",
                  "logout", "session expired")  # fmt: skip

        def line(r: random.Random, i: int) -> str:
            d = r.choice(days)
            hh = f"{r.randrange(24):02d}:{r.randrange(60):02d}:{r.randrange(60):02d}"
            ip = f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
            ev = r.choice(events) if r.random() < 0.5 else r.choice(NOISE).format(n=r.randrange(2, 900))
            if ev.startswith(("login", "password", "logout", "session")):
                return f"{d.isoformat()} {hh} auth[{r.randrange(100, 999)}]: {ev} user={r.choice(users)} ip={ip}"
            return f"{d.isoformat()} {hh} {r.choice(SERVICES)}[{r.randrange(100, 999)}]: {ev}"

        lines = sorted(fill(rng, chars, line))  # in time order, as a log is written
        gold = len(_failed_users("\n".join(lines), target.isoformat()))
        return Built(
            "\n".join(lines) + "\n",
            {"day_iso": target.isoformat(), "day_long": f"{MONTHS[target.month - 1]} {target.day}, {target.year}"},
            gold,
            {"day": target.isoformat()},
        )

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        return str(len(_failed_users(context, meta["day"])))

    def guess(self, instance: Instance) -> str:
        """Regex-only and careless: distinct users with a failed login on any day."""
        return str(len(set(re.findall(r"login failed user=(\S+)", instance.context))))


def _failed_users(text: str, day: str) -> set[str]:
    pat = r"^" + re.escape(day) + r" \S+ auth\[\d+\]: login failed user=(\S+)"
    return set(re.findall(pat, text, flags=re.MULTILINE))


STATUSES = ("shipped", "delivered", "refunded", "cancelled", "pending")


class ListIds(GeneralFamily):
    """``g-list-ids``: every order id meeting two field conditions (a city and a status) in a pipe-separated ledger."""

    name = "g-list-ids"
    sizes = {"32k": 32_000, "256k": 256_000}
    metric = "F1 over the set of order ids named (ORD-nnnnn)"
    tags = {"format": "tables", "answer_type": "list", "reasoning": "code-decidable list"}
    answer_tokens = 160
    phrasings = (
        "List the ids of all orders shipped to {city} that were {status}. Answer with the ids, comma-separated.",
        "Which orders to {city} have the status {status}? Give every order id.",
        "Give me every order id whose destination is {city} and whose status is {status}.",
        "All orders with status '{status}' going to {city}: list their ids, separated by commas.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        cities = rng.sample(CITIES, 12)
        city, status = cities[0], rng.choice(("refunded", "cancelled"))
        # few matches: the target pair is drawn rarely, so the gold list stays short at every size
        n_rows = max(40, chars // 56)
        want = max(3, min(12, n_rows // 60))
        hit_rows = set(rng.sample(range(n_rows), want))
        ids = rng.sample(range(10_000, 99_999), n_rows)
        rows = []
        for i in range(n_rows):
            if i in hit_rows:
                c, s = city, status
            else:
                c, s = rng.choice(cities), rng.choice(STATUSES)
                if (c, s) == (city, status):
                    s = "delivered"
            total = f"{rng.randrange(5, 900)}.{rng.randrange(100):02d}"
            day = date(2025, 1, 1) + timedelta(days=rng.randrange(365))
            rows.append(f"ORD-{ids[i]} | {day.isoformat()} | {c} | {s} | {total} EUR")
        head = "order | date | destination | status | total\n"
        gold = sorted(f"ORD-{ids[i]}" for i in hit_rows)
        return Built(head + "\n".join(rows) + "\n", {"city": city, "status": status}, gold,
                     {"city": city, "status": status, "id_pattern": r"ORD-\d{5}"})  # fmt: skip

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        pat = r"^(ORD-\d{5}) \| \S+ \| " + re.escape(meta["city"]) + r" \| " + re.escape(meta["status"]) + " "
        return ", ".join(re.findall(pat, context, flags=re.MULTILINE))

    def guess(self, instance: Instance) -> str:
        """Regex-only and careless: the first three ids of the ledger."""
        return ", ".join(re.findall(r"ORD-\d{5}", instance.context)[:3])
