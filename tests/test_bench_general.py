"""The general suite: every family on both splits is deterministic, solvable by its oracle, not by its baseline.

No model and no network: the families are generated from a seed. Also checked: the dev and test splits share no
phrasing and no seed stream, the suite covers every axis issue 17 names (format, answer type, reasoning), the four
source-dump header styles occur, and a split run's summary carries its per-family rows and ``test_mean``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from bench import profiles, report, runner, tokens
from bench.general_results import split_summary
from bench.tasks import all_family_names, family_names, generate, get_family
from bench.tasks.general import BASELINE_CEILING, DEFAULT_SIZES, GeneralFamily, general_names, get_general
from bench.tasks.general.common import (
    ANSWER_TYPES,
    SPLITS,
    code_literal_score,
    count_score,
    list_f1,
    literal_score,
    parse_date,
    score_answer,
)

NAMES = general_names()
CASES = [(n, s) for n in NAMES for s in SPLITS]
_QUESTION_WORD = re.compile(r"^(what|which|who|whom|whose|when|where|why|how|is|are|does|do|did|in|on|of)\b", re.I)
_FORMAT_INSTRUCTION = re.compile(r"answer with|reply|nothing else|only\.|as a date|comma-separated", re.I)


def _fam(name: str) -> GeneralFamily:
    return get_general(name)


def _small(name: str) -> str:
    return next(iter(_fam(name).sizes))


def test_the_suite_has_at_least_twelve_families_and_leaves_the_public_ones_alone() -> None:
    assert len(NAMES) >= 12 and len(set(NAMES)) == len(NAMES)
    assert all(n.startswith("g-") for n in NAMES)
    assert family_names() == ("niah", "aggregate", "pairs", "multihop", "codeqa")
    assert all_family_names() == family_names() + NAMES
    assert set(BASELINE_CEILING) == set(NAMES) == set(DEFAULT_SIZES)
    assert profiles.get("quick").families == list(family_names())
    assert profiles.get("smoke").families == list(family_names())


@pytest.mark.parametrize(("name", "split"), CASES)
def test_generation_is_deterministic_and_counts_exactly(name: str, split: str) -> None:
    fam, size = _fam(name), _small(name)
    a = fam.generate_split(size, 0, "seed-a", split)
    b = fam.generate_split(size, 0, "seed-a", split)
    c = fam.generate_split(size, 1, "seed-a", split)
    assert (a.context, a.question, a.gold) == (b.context, b.question, b.gold)
    assert a.context != c.context
    assert a.input_tokens == tokens.count(a.context)
    assert a.id == f"{name}/{split}/{size}/0" and a.split == split
    assert 0.85 * fam.sizes[size] <= len(a.context) <= 1.15 * fam.sizes[size], len(a.context)


@pytest.mark.parametrize(("name", "split"), CASES)
def test_oracle_scores_1_and_baseline_stays_under_its_ceiling(name: str, split: str) -> None:
    fam = _fam(name)
    insts = [fam.generate_split(_small(name), i, "oracle-check", split) for i in range(8)]
    assert [fam.score(x, fam.oracle(x)).value for x in insts] == [1.0] * 8
    base = [fam.score(x, fam.baseline(x)).value for x in insts]
    assert sum(base) / len(base) <= BASELINE_CEILING[name], base
    assert all(fam.score(x, "I do not know").value < 1.0 for x in insts)
    assert all(fam.score(x, reply).value == 0.0 for x in insts for reply in ("", "None", "NOT FOUND"))


@pytest.mark.parametrize("name", NAMES)
def test_phrasings_are_split_and_varied(name: str) -> None:
    fam = _fam(name)
    dev, test = set(fam.phrasing_ids("dev")), set(fam.phrasing_ids("test"))
    assert len(fam.phrasings) >= 3 and dev and test and not dev & test
    assert dev | test == set(range(len(fam.phrasings)))
    for split, ids in (("dev", dev), ("test", test)):
        seen = {fam.generate_split(_small(name), i, "ph", split).meta["phrasing"] for i in range(4)}
        assert seen == ids
    assert any(not _QUESTION_WORD.match(p) for p in fam.phrasings)
    assert any(_FORMAT_INSTRUCTION.search(p) for p in fam.phrasings)


@pytest.mark.parametrize("name", NAMES)
def test_dev_and_test_draw_from_separate_seed_streams(name: str) -> None:
    fam = _fam(name)
    dev = {fam.generate_split(_small(name), i, "s", "dev").context for i in range(3)}
    test = {fam.generate_split(_small(name), i, "s", "test").context for i in range(3)}
    assert not dev & test
    assert fam.generate(_small(name), 0, "s").context == fam.generate_split(_small(name), 0, "s", "dev").context


def test_the_suite_covers_every_axis_of_the_issue() -> None:
    tags = [_fam(n).tags for n in NAMES]
    formats = {t["format"] for t in tags}
    assert {"log lines", "CSV", "JSON lines", "Markdown documents", "e-mails", "chat transcripts", "contracts",
            "tables", "source code"} <= formats  # fmt: skip
    assert {t["answer_type"] for t in tags} == set(ANSWER_TYPES)
    assert {"lookup", "code-decidable count", "code-decidable list", "semantic count", "group-by and arg-max",
            "two hops", "latest of several mentions", "comparison"} <= {t["reasoning"] for t in tags}  # fmt: skip


@pytest.mark.parametrize("name", ["g-code-default", "g-code-caller"])
def test_source_dumps_come_in_four_header_styles(name: str) -> None:
    fam = _fam(name)
    heads = [fam.generate_split("32k", i, "hs", "dev").context.split("\n", 1)[0] for i in range(4)]
    assert heads[0].startswith("### ") and heads[1].startswith("# File: ")
    assert heads[2].startswith("==> ") and heads[2].endswith(" <==")
    assert heads[3] == "import logging"


def test_the_largest_needle_is_millions_of_characters_and_still_solvable() -> None:
    fam = _fam("g-log-needle")
    x = fam.generate_split("2m", 0, "big", "test")
    assert len(x.context) >= 1_900_000
    assert fam.score(x, fam.oracle(x)).value == 1.0
    assert x.gold not in x.question and x.context.count(x.gold) == 1


def test_distractors_are_planted() -> None:
    """A careless method has something to fall for: near-miss answers exist in the context."""
    needle = _fam("g-log-needle").generate_split("32k", 0, "d", "dev")
    assert len(needle.meta["distractors"]) >= 4 and all(d in needle.context for d in needle.meta["distractors"])
    staff = _fam("g-staff-2hop").generate_split("32k", 0, "d", "dev")
    assert _fam("g-staff-2hop").baseline(staff) in staff.meta["distractors"]  # the one-hop answer is wrong
    tickets = _fam("g-ticket-count").generate_split("32k", 0, "d", "dev")
    assert abs(int(_fam("g-ticket-count").baseline(tickets)) - tickets.gold) > 0.25 * tickets.gold
    caller = _fam("g-code-caller").generate_split("32k", 0, "d", "dev")
    assert f"# result = {caller.meta['callee']}(result)" in caller.context


def test_scorers() -> None:
    assert parse_date("It is Friday, March 14.") == (None, 3, 14)
    assert parse_date("2025-03-14") == (2025, 3, 14) and parse_date("14 March 2025") == (2025, 3, 14)
    assert score_answer("date", "Answer: March 14", "2025-03-14", {}) == 1.0
    assert score_answer("date", "March 14, 2024", "2025-03-14", {}) == 0.0
    assert literal_score("The city is Lyon.", "Lyon", ["Graz"]) == 1.0
    assert literal_score("Lyon or Graz", "Lyon", ["Graz"]) == 0.0
    assert code_literal_score('"utf-8"', "'utf-8'", ["'ascii'"]) == 1.0
    assert code_literal_score("None", "'utf-8'", []) == 0.0
    assert count_score("about 95", 100, 0.1) == 1.0 and count_score("80", 100, 0.1) == pytest.approx(0.75**10)
    assert count_score("12", 12, 0.0) == 1.0 and count_score("13", 12, 0.0) == 0.75
    assert list_f1("ORD-11111, ORD-22222", ["ORD-11111", "ORD-33333"], r"ORD-\d{5}") == 0.5
    assert score_answer("yes/no", "Yes, it is.", "yes", {}) == 1.0
    assert score_answer("yes/no", "No.", "yes", {}) == 0.0


def test_general_profile_has_a_split_and_names_its_results_by_it() -> None:
    dev, test = profiles.get("general"), profiles.get("general", "test")
    assert dev.split == "dev" and test.split == "test"
    assert dev.families == list(NAMES) and {"oracle", "baseline", "base", "rlm"} == set(dev.methods)
    assert (dev.result_name, test.result_name) == ("general-dev", "general")
    assert dev.runs("g-log-count", "rlm", 2) and not dev.runs("g-log-count", "base", 1)
    with pytest.raises(ValueError, match="no dev/test split"):
        profiles.get("quick", "test")
    with pytest.raises(ValueError, match="unknown split"):
        profiles.get("general", "train")
    x = generate(get_family("g-list-ids"), "32k", 0, "seed", "test")
    assert x.id == "g-list-ids/test/32k/0"
    with pytest.raises(ValueError, match="no dev/test split"):
        generate(get_family("niah"), "1k", 0, "seed", "test")


def _args(out: Path, split: str, families: list[str]) -> argparse.Namespace:
    return argparse.Namespace(
        profile="general", split=split, families=families, sizes=None, methods=["oracle", "baseline"], n=None,
        root=None, worker=None, root_ctx=None, base_ctx=None, max_wall_s=None, n_gpu_layers=None,
        seed="t", no_progress=True, report_only=False, out=out,
    )  # fmt: skip


def test_a_split_run_records_its_split_and_both_splits_coexist(tmp_path: Path) -> None:
    fams = ["g-log-needle", "g-csv-argmax"]
    assert runner.main(_args(tmp_path, "dev", fams)) == 0
    assert runner.main(_args(tmp_path, "test", fams)) == 0  # same folder: test ids are not dev's, nothing skipped
    recs = runner.load_results(tmp_path / runner.RESULTS)
    assert {r["split"] for r in recs} == {"dev", "test"}
    assert len(recs) == 2 * 2 * 3 * 2  # splits x families x instances x methods
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["split"] == "test" and summary["test_mean"] is None  # no rlm run: no mean to report
    assert {c["n"] for f in summary["checks"].values() for c in f.values()} == {3}  # the test records only
    assert json.loads((tmp_path / "run.json").read_text())["split"] == "test"


def test_the_summary_carries_test_mean_beside_family_rows(tmp_path: Path) -> None:
    recs = []
    for fam, scores in (("g-log-needle", [1.0, 1.0, 0.0]), ("g-docs-yesno", [1.0, 0.0, 0.0])):
        for i, s in enumerate(scores):
            recs.append({"id": f"{fam}/test/32k/{i}", "family": fam, "size": "32k", "index": i, "method": "rlm",
                         "split": "test", "score": s, "seconds": 10.0, "tokens": 100, "input_tokens": 8000,
                         "answer": "x", "gold": "y", "finish_reason": "final", "trace_path": None})  # fmt: skip
    rows = split_summary(recs, "test")
    assert rows["test_mean"] == pytest.approx(0.5)
    assert rows["families"]["g-log-needle"]["mean"] == pytest.approx(2 / 3, abs=1e-4)
    assert [f["id"] for f in rows["families"]["g-docs-yesno"]["failures"]] == ["g-docs-yesno/test/32k/1",
                                                                             "g-docs-yesno/test/32k/2"]  # fmt: skip
    assert rows["families"]["g-docs-yesno"]["tags"]["answer_type"] == "yes/no"
    assert rows["families_under_0.40"] == ["g-docs-yesno"]
    doc = report.write_all(tmp_path, recs, {"profile": "general", "split": "test"})
    written = json.loads(Path(doc["summary"]).read_text())
    assert written["test_mean"] == pytest.approx(0.5) and set(written["families"]) == {"g-log-needle", "g-docs-yesno"}
    text = Path(doc["report"]).read_text()
    assert "Mean over families: **0.500**" in text and "| g-docs-yesno | Markdown documents | yes/no |" in text


def test_the_dev_instance_tool_writes_files_for_outcore_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.tasks.general.__main__ import main

    assert main(["g-staff-2hop", "--index", "1", "--out", str(tmp_path)]) == 0
    gold = json.loads((tmp_path / "gold.json").read_text())
    assert gold["id"] == "g-staff-2hop/dev/32k/1"
    assert (tmp_path / "question.txt").read_text().strip() in get_general("g-staff-2hop").phrasings[1].format(
        person=get_general("g-staff-2hop").generate_split("32k", 1, "outcore-bench-v1", "dev").meta["person"]
    )
    assert "outcore run --json -c" in capsys.readouterr().out
    assert main(["g-staff-2hop", "--index", "1", "--score", f"Answer: {gold['gold']}"]) == 0
    assert capsys.readouterr().out.strip() == "1.0"
    assert main(["g-nope"]) == 2 and "unknown family" in capsys.readouterr().err
