"""Conversation families: a mailbox where one thread decides a meeting date, and a chat where one person takes a task.

The distractors are the conversation's own: dates proposed and turned down, each e-mail's sent date, other threads'
meetings; people who ask for the task, decline it or take a different one.
"""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from typing import Any

from bench.tasks import Instance
from bench.tasks.general.common import MONTHS, Built, GeneralFamily, people

TOPICS = ("Q2 budget review", "vendor onboarding", "security audit kickoff", "office move planning",
          "pricing workshop", "hiring panel sync", "data migration go/no-go", "customer advisory board",
          "quarterly roadmap review", "incident retrospective", "partner summit prep", "compliance training")  # fmt: skip
PROPOSE = ("Could we do {d}?", "How about {d}?", "{d} would work for me.", "I could also do {d} if that helps.")
REJECT = ("{d} doesn't work for me, sorry.", "I'm out on {d}.", "{d} clashes with the board call.")
DECIDE = (
    "Let's go with {d} then, invite sent.",
    "Confirmed: we meet on {d}.",
    "Agreed, {d} it is. I've booked a room.",
)


def _long(d: date) -> str:
    return f"{d.strftime('%A')}, {MONTHS[d.month - 1]} {d.day}"


class EmailDate(GeneralFamily):
    """``g-email-date``: the date the team settled on for one meeting, in a mailbox of many threads."""

    name = "g-email-date"
    sizes = {"32k": 32_000, "256k": 256_000}
    metric = "1 when the reply's first date is the decided one (month and day; the year when given)"
    tags = {"format": "e-mails", "answer_type": "date", "reasoning": "lookup"}
    answer_tokens = 24
    phrasings = (
        "On what date was the {topic} meeting finally scheduled? Answer with the date.",
        "Find the date the team agreed on for the {topic} meeting.",
        "What date did they settle on for the {topic}?",
        "The {topic} meeting was moved around a few times. Give the date it was finally set for, as a date only.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        topics = rng.sample(TOPICS, len(TOPICS))
        target = topics[0]
        names = people(rng, 20)
        base = date(2025, 1, 6) + timedelta(days=rng.randrange(300))
        mails: list[str] = []
        gold, decided_id = "", ""
        t = 0
        k = 0
        at = rng.randrange(max(3, chars // 760))  # the asked thread's place: anywhere (a thread is ~760 chars)
        while sum(len(m) + 1 for m in mails) < chars or not gold:
            topic = target if k == at else topics[1 + k % (len(topics) - 1)]
            sent = base + timedelta(days=k // 3)
            options = sorted(rng.sample(range(3, 25), 4))
            dates = [sent + timedelta(days=o) for o in options]
            who = rng.sample(names, 3)
            steps = [(who[0], rng.choice(PROPOSE).format(d=_long(dates[0]))),
                     (who[1], rng.choice(REJECT).format(d=_long(dates[0])) + " " + rng.choice(PROPOSE).format(d=_long(dates[1]))),
                     (who[2], rng.choice(PROPOSE).format(d=_long(dates[2])))]  # fmt: skip
            win = dates[rng.randrange(1, 3)]
            steps.append((who[0], rng.choice(DECIDE).format(d=_long(win))))
            for j, (frm, body) in enumerate(steps):
                t += 1
                mid = f"<{t:05d}.{rng.randrange(10**6)}@mail.example>"
                re_ = "Re: " if j else ""
                mails.append(f"Message-ID: {mid}\nFrom: {frm}\nDate: {sent.isoformat()} {9 + j}:{rng.randrange(60):02d}\n"
                             f"Subject: {re_}{topic}\n\n{body}\n")  # fmt: skip
                if topic == target and j == 3 and not gold:
                    gold, decided_id = win.isoformat(), mid
            k += 1
        return Built("\n".join(mails), {"topic": target}, gold, {"topic": target, "decided": decided_id})

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        mail = context.split(f"Message-ID: {meta['decided']}\n", 1)[1].split("\nMessage-ID: ", 1)[0]
        body = mail.split("\n\n", 1)[1]
        m = re.search(r"\w+day, (\w+ \d+)", body)
        return m.group(1) if m else ""

    def guess(self, instance: Instance) -> str:
        """Closed-book: a date drawn from the question."""
        r = random.Random(instance.question)
        return f"{MONTHS[r.randrange(12)]} {r.randrange(1, 29)}"


TASKS = ("the release notes", "the demo script", "the budget sheet", "the customer e-mail", "the test plan",
         "the slide deck", "the vendor call", "the on-call handover", "the migration checklist", "the press brief")  # fmt: skip
ASK = ("Who can take {t}?", "We still need someone for {t}.", "Any volunteer for {t}?")
# a decline may say "I'll" and an acceptance may not: who took the task is a judgement, not a keyword
DECLINE = ("I can't do {t} this week, sorry.", "Not me for {t}, I'm swamped.", "I'd pass on {t}.",
           "I'll have to skip {t}, I'm travelling.", "I'd love to take {t} but I'm out until Friday.")  # fmt: skip
ACCEPT = ("OK, I'll take {t}.", "I can do {t}, leave it with me.", "Sure, {t} is mine.", "Put me down for {t}.",
          "Fine, {t} falls to me then.")  # fmt: skip


class ChatWho(GeneralFamily):
    """``g-chat-who``: who agreed to do one task, in a team chat where tasks are asked for, declined and taken."""

    name = "g-chat-who"
    sizes = {"32k": 32_000, "256k": 256_000}
    metric = "1 when the reply names the person who took the task and no one else from its exchange"
    tags = {"format": "chat transcripts", "answer_type": "name", "reasoning": "lookup"}
    answer_tokens = 16
    phrasings = (
        "Who agreed to take {task} in the {day} chat? Answer with the person's name only.",
        "Find the person who said they would do {task} on {day}.",
        "In the chat of {day}, who took on {task}?",
        "Someone volunteered for {task} in the chat on {day}. Give that person's full name, nothing else.",
    )

    def build(self, rng: random.Random, chars: int, index: int) -> Built:
        names = people(rng, 24)
        day0 = date(2025, 1, 6) + timedelta(days=rng.randrange(300))
        lines: list[str] = []
        total, k = 0, 0
        meta: dict[str, Any] = {}
        gold, distract = "", []
        at = rng.randrange(max(2, chars // 1200))  # the asked day: anywhere in the transcript (a day is ~1.2K chars)
        while total < chars or not gold:
            day = day0 + timedelta(days=k)
            lines.append(f"=== #team-ops, {day.isoformat()} ===")
            tasks = rng.sample(TASKS, 3)
            minute = 8 * 60 + rng.randrange(60)  # the day's clock: each message a few minutes after the last
            for task in tasks:
                asker, no1, no2, yes = rng.sample(names, 4)
                turns = [(asker, rng.choice(ASK)), (no1, rng.choice(DECLINE)), (no2, rng.choice(DECLINE)),
                         (yes, rng.choice(ACCEPT))]  # fmt: skip
                for who, text in turns:
                    for speaker, said in [(who, text.format(t=task))] + (
                        [(rng.choice(names), rng.choice(CHATTER))] if rng.random() < 0.5 else []
                    ):
                        minute += rng.randrange(1, 9)
                        lines.append(f"[{minute // 60:02d}:{minute % 60:02d}] {speaker}: {said}")
                if k == at and task == tasks[1]:
                    gold, distract = yes, [asker, no1, no2]
                    meta = {"task": task, "day": day.isoformat()}
            total = sum(len(x) + 1 for x in lines)
            k += 1
        return Built("\n".join(lines) + "\n", {"task": meta["task"], "day": meta["day"]}, gold, meta,
                     distract)  # fmt: skip

    def solve(self, context: str, meta: dict[str, Any]) -> str:
        day = context.split(f"=== #team-ops, {meta['day']} ===\n", 1)[1].split("\n===", 1)[0]
        accept = "|".join(re.escape(a.format(t=meta["task"])) for a in ACCEPT)
        m = re.search(r"^\[[\d:]+\] ([^:]+): (?:" + accept + ")$", day, flags=re.MULTILINE)
        return m.group(1) if m else ""

    def guess(self, instance: Instance) -> str:
        """Regex-only and careless: the first person who mentions the task on the asked day (who asked for it)."""
        day = instance.context.split(f"=== #team-ops, {instance.meta['day']} ===\n", 1)[1]
        m = re.search(r"^\[[\d:]+\] ([^:]+): .*" + re.escape(instance.meta["task"]), day, flags=re.MULTILINE)
        return m.group(1) if m else ""


CHATTER = ("coffee anyone?", "the build is green again", "brb, standup", "who broke the staging link?",
           "thanks all", "pushing the fix now", "lunch at 12:30?", "+1")  # fmt: skip
