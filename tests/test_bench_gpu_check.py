"""``bench/gpu_check.sh`` on a machine without a GPU: it says so and exits 0, quickly (no build, no model)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"


def test_gpu_check_says_no_gpu_and_exits_0(tmp_path: Path) -> None:
    # the PATH without any folder that holds nvidia-smi: what a CPU-only machine looks like on any machine
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "nvidia-smi").exists()]
    env = {**os.environ, "PATH": os.pathsep.join(dirs)}
    before = sorted(p.name for p in (SCRIPT.parent / "results").iterdir())
    t0 = time.monotonic()
    res = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "no GPU" in res.stdout and time.monotonic() - t0 < 30
    assert sorted(p.name for p in (SCRIPT.parent / "results").iterdir()) == before  # nothing measured, nothing written
