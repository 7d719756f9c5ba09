"""Report, summary shape, plots and resumable runs (model-free methods, so fast)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import report, runner
from bench.profiles import get


def _args(out: Path, **kw: object) -> argparse.Namespace:
    base: dict[str, object] = dict(profile="smoke", families=None, sizes=None, methods=["oracle", "baseline"], n=2, out=out,
                root=None, worker=None, root_ctx=None, n_gpu_layers=None, max_wall_s=None,
                seed="test-seed", no_progress=True, report_only=False)  # fmt: skip
    base.update(kw)
    return argparse.Namespace(**base)


def test_bootstrap_interval() -> None:
    assert report.bootstrap_ci([50.0]) == (50.0, 50.0)
    lo, hi = report.bootstrap_ci([0.0, 100.0] * 10)
    assert 20 < lo < 50 < hi < 80
    assert report.bootstrap_ci([0.0, 100.0] * 10) == (lo, hi)  # seeded


def test_wilson_interval_for_right_or_wrong_scores_bootstrap_for_graded() -> None:
    lo, hi = report.wilson_ci(0, 12)
    assert lo == 0.0 and 0.2 < hi < 0.3  # not zero-width at 0/n
    lo, hi = report.wilson_ci(6, 12)
    assert abs((lo + hi) / 2 - 0.5) < 1e-9 and 0.2 < lo < 0.3
    assert report.interval([1.0, 0.0, 1.0])[2] == "wilson"
    assert report.interval([0.5, 0.25, 1.0])[2] == "bootstrap"
    recs = [{"score": s, "seconds": 1, "tokens": 1, "input_tokens": 1} for s in [1.0, 0.0] * 3]
    c = report.cell(recs)
    assert c["interval"] == "wilson" and c["wide"] and c["n"] == 6  # 3/6: about +/-35 points
    assert "(n too small for ±20)" in report._fmt_cell(c)
    narrow = report.cell([{"score": 1.0, "seconds": 1, "tokens": 1, "input_tokens": 1}] * 20)
    assert not narrow["wide"] and narrow["ci95"][0] > 80


def test_run_writes_report_summary_plot_and_resumes(tmp_path: Path) -> None:
    assert runner.main(_args(tmp_path)) == 0
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 5 * 2 * 2
    rec = json.loads(lines[0])
    for k in (
        "answer",
        "gold",
        "score",
        "seconds",
        "tokens_by_role",
        "sub_calls",
        "depth",
        "finish_reason",
        "trace_path",
    ):
        assert k in rec
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) >= {"machine", "models", "results", "checks"}
    assert all(not cells for cells in summary["results"].values())  # no model method ran
    assert summary["machine"]["cores"] >= 1 and summary["machine"]["versions"]["bpe-openai"] == "0.1.4"
    for fam in ("niah", "aggregate", "pairs", "multihop", "codeqa"):
        cell = summary["checks"][fam]["oracle"]
        assert cell["score"] == 100.0 and cell["n"] == 2 and cell["tokens"] == 0.0
        assert cell["interval"] == "wilson" and cell["ci95"][1] == 100.0 and cell["wide"]  # 2/2: [34, 100]
    md = (tmp_path / "report.md").read_text()
    assert "## niah" in md and "| 1k |" in md and "100.0 [34.2, 100.0]" in md and "paper" in md
    png = tmp_path / "score_vs_length.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run with the same --out redoes nothing; a larger -n adds only the new instances
    assert runner.main(_args(tmp_path)) == 0
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 20
    assert runner.main(_args(tmp_path, n=3, families=["niah"])) == 0
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 22


def test_a_cut_line_is_ignored_on_resume(tmp_path: Path) -> None:
    assert runner.main(_args(tmp_path, families=["niah"], n=1)) == 0
    with (tmp_path / "results.jsonl").open("a") as f:
        f.write('{"id": "niah/1k/9", "meth')
    assert len(runner.load_results(tmp_path / "results.jsonl")) == 2


def test_failed_oracle_check_fails_the_run() -> None:
    prof = get("smoke")
    recs = [
        {"family": "niah", "method": "oracle", "score": 0.5},
        {"family": "niah", "method": "baseline", "score": 0.9},
    ]
    prof.families = ["niah"]
    problems = runner.check_oracles(prof, recs)
    assert problems == ["niah: oracle scored 50.0 %", "niah: baseline scored 90.0 %"]


def test_bad_selection_is_a_clear_error(tmp_path: Path) -> None:
    from engine.errors import UserError

    for kw in ({"families": ["nope"]}, {"methods": ["magic"]}, {"sizes": ["3z"]}, {"n": 0}):
        try:
            runner.main(_args(tmp_path, **kw))
        except UserError as e:
            assert str(e)
        else:
            raise AssertionError(f"{kw} was accepted")


def test_unknown_model_fails_before_any_instance(tmp_path: Path) -> None:
    from models.errors import ModelsError

    try:
        runner.main(_args(tmp_path, methods=["base"], root="no-such-model", families=["niah"]))
    except ModelsError as e:
        assert "no-such-model" in str(e)
    else:
        raise AssertionError("an unknown root was accepted")
    assert runner.load_results(tmp_path / "results.jsonl") == []


def test_quick_base_reads_the_whole_window_and_ablate_runs_the_four_methods_everywhere() -> None:
    quick = get("quick")
    assert quick.base_ctx is None and quick.root_ctx == 32768  # base reads the 1.5B's whole 32K window
    ablate = get("ablate")
    assert {"base", "rlm", "rlm-no-sub", "summary"} <= set(ablate.methods)
    for fam in ("niah", "aggregate", "pairs", "multihop", "codeqa"):
        assert fam in ablate.families and ablate.sizes[fam]
        assert all(ablate.runs(fam, m, ablate.n_for(fam) - 1) for m in ("base", "rlm", "rlm-no-sub", "summary"))
    assert ablate.n_for("niah") >= 12 and ablate.check_oracles
