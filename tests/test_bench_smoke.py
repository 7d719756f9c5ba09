"""CI's run of ``outcore bench --profile smoke``: the whole pipeline with the real 135M model and the real sandbox.

The smoke profile checks its own oracles (100 %) and baselines (below their ceilings) and exits non-zero if one
fails, so this test also guards the suite against label leaks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def test_smoke_profile_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    outcore = Path(sys.executable).with_name("outcore")
    t0 = time.monotonic()
    res = subprocess.run(
        [str(outcore), "bench", "--profile", "smoke", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "report.md").read_text().startswith("# outcore bench: smoke profile")
    assert list(out.glob("*.png"))
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    fams = {r["family"] for r in recs}
    assert fams == {"niah", "aggregate", "pairs", "multihop", "codeqa"}
    oracle = [r for r in recs if r["method"] == "oracle"]
    assert oracle and all(r["score"] == 1.0 for r in oracle)
    # the real engine, the real model, the real sandbox: a trace with the run's start and end
    rlm = [r for r in recs if r["method"] == "rlm"]
    assert rlm and all(r["root"] == "smollm2-135m" and r["error"] is None for r in rlm)
    events = [json.loads(line)["event"] for line in Path(rlm[0]["trace_path"]).read_text().splitlines()]
    assert events[0] == "run_start" and events[-1] == "run_end"
    base = [r for r in recs if r["method"] == "base"]
    assert base and base[0]["tokens_by_role"]["root"]["prompt_tokens"] > 500
    # a second run finds everything done
    res2 = subprocess.run(
        [str(outcore), "bench", "--profile", "smoke", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res2.returncode == 0 and len((out / "results.jsonl").read_text().splitlines()) == len(recs)
    print(f"smoke profile: {took:.1f} s")
