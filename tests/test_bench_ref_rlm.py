"""``ref-rlm``: the reference implementation (PyPI ``rlms``) driven by the runner over the real ``outcore serve``.

The 135M test model is served as the plain models ``root`` and ``worker``; the answer may well be wrong, the
test asserts the shape of the result row and that the reference library really talked to the served model.
"""

from __future__ import annotations

import argparse
import json
from importlib import metadata
from pathlib import Path

import pytest

from bench import ref_rlm, runner
from engine.errors import UserError


def test_runner_drives_ref_rlm_over_outcore_serve(tmp_path: Path) -> None:
    args = argparse.Namespace(
        profile="smoke", families=["niah"], sizes=["1k"], methods=["ref-rlm"], n=1, out=tmp_path,
        root=None, worker=None, root_ctx=None, n_gpu_layers=None, max_wall_s=60.0, seed="ref-seed",
        no_progress=True, report_only=False,
    )  # fmt: skip
    assert runner.main(args) == 0
    (rec,) = runner.load_results(tmp_path / runner.RESULTS)
    assert rec["method"] == "ref-rlm" and rec["id"] == "niah/1k/0"
    assert rec["root"] == rec["worker"] == "smollm2-135m"
    assert rec["error"] is None, rec["error"]
    assert rec["finish_reason"] in ("final", "max_root_turns", "max_wall_s", "limit")
    if rec["root_turns"] > 2:  # the profile allows 2 iterations; a third call is the library's last-answer prompt
        assert rec["finish_reason"] == "max_root_turns"
    assert isinstance(rec["answer"], str) and 0.0 <= rec["score"] <= 1.0 and rec["seconds"] > 0
    root = rec["tokens_by_role"]["root"]  # usage the server reported to the reference client
    assert root["calls"] >= 1 and root["prompt_tokens"] > 100 and root["completion_tokens"] >= 1
    assert rec["root_turns"] == root["calls"] and rec["tokens"] >= root["prompt_tokens"]
    trace = [json.loads(line) for line in Path(rec["trace_path"]).read_text().splitlines()]
    assert trace and trace[0].get("type") == "metadata"  # the reference library's own trajectory log
    served = (tmp_path / "traces" / "ref-rlm-serve.toml").read_text()
    assert 'model = "smollm2-135m"' in served and "[models.worker]" in served
    assert "ref-rlm" in (tmp_path / "report.md").read_text()


def test_missing_reference_library_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(ref_rlm.metadata, "version", missing)
    with pytest.raises(UserError, match=r"ref-rlm needs the reference implementation .*pip install -e '\.\[ref\]'"):
        ref_rlm.check_installed()
    monkeypatch.setattr(ref_rlm.metadata, "version", lambda name: "0.0.9")
    with pytest.raises(UserError, match="pinned to rlms==0.1.3, found 0.0.9"):
        ref_rlm.check_installed()
