"""``outcore bench compare``: result folders made by the real runner with scripted roots, side by side or refused."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench import compare, runner
from bench import methods as M
from engine.backends.base import Message
from engine.backends.scripted import ScriptedBackend
from engine.errors import UserError


def _reader(msgs: Sequence[Message]) -> str:
    """A root that finds the needle (right on niah), and always picks B on codeqa."""
    text = msgs[-1].content
    hit = re.search(r"special magic \w+ for \S+ is: (\S+?)\.", text)
    return hit.group(1) if hit else "B"


def _guesser(msgs: Sequence[Message]) -> str:
    return "I do not know."


ROOTS = {"reader.gguf": _reader, "guesser.gguf": _guesser}


@pytest.fixture
def scripted_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each root spec loads as a scripted backend (the runner, the methods and the report are the real ones)."""

    def load(spec: str, **options: Any) -> ScriptedBackend:
        return ScriptedBackend(ROOTS[spec], name=spec, n_ctx=int(options.get("n_ctx", 8192)))

    monkeypatch.setattr(M, "load_backend", load)


def _run(out: Path, root: str, seed: str = "cmp-seed", n: int = 3, families: list[str] | None = None) -> Path:
    args = argparse.Namespace(
        profile="ablate", families=families or ["niah", "codeqa"], sizes=["1k", "4k"], methods=["base", "base-4k"],
        n=n, out=out, root=root, worker=root, root_ctx=4096, n_gpu_layers=None, max_wall_s=None, seed=seed,
        no_progress=True, report_only=False,
    )  # fmt: skip
    runner.main(args)
    return out


def test_compare_two_roots_writes_one_table_and_one_plot(tmp_path: Path, scripted_models: None) -> None:
    a = _run(tmp_path / "reader", "reader.gguf")
    b = _run(tmp_path / "guesser", "guesser.gguf")
    paths = compare.compare([a, b], tmp_path / "cmp")
    md = paths["table"].read_text()
    assert md.count("| `reader.gguf` |") == 2 and md.count("| `guesser.gguf` |") == 2  # base, base-4k each
    assert "| root | worker | machine | method | niah | codeqa |" in md
    row = next(line for line in md.splitlines() if line.startswith("| `reader.gguf`") and "| base |" in line)
    assert "100.0 [43.9, 100.0] †" in row  # 3/3 right on niah: Wilson interval, wider than ±20
    guess = next(line for line in md.splitlines() if line.startswith("| `guesser.gguf`") and "| base |" in line)
    assert "0.0 [0.0, 56.1] †" in guess
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads(paths["json"].read_text())["rows"]
    assert {(r["root"], r["method"]) for r in rows} == {(root, m) for root in ROOTS for m in ("base", "base-4k")}
    assert all(set(r["families"]) == {"niah", "codeqa"} for r in rows)
    assert all({"score", "ci95", "seconds", "tokens", "n"} <= set(c) for r in rows for c in r["families"].values())
    # the command line: the same table
    outcore = Path(sys.executable).with_name("outcore")
    cli = tmp_path / "cli"
    res = subprocess.run(
        [str(outcore), "bench", "compare", str(a), str(b), "--out", str(cli)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert f"table: {cli / 'compare.md'}" in res.stdout and (cli / "compare.png").exists()
    assert (cli / "compare.md").read_text() == md


def test_compare_refuses_folders_that_ran_different_instances(tmp_path: Path, scripted_models: None) -> None:
    a = _run(tmp_path / "a", "reader.gguf")
    other_seed = _run(tmp_path / "b", "guesser.gguf", seed="another-seed")
    with pytest.raises(UserError, match="different instances: seed 'cmp-seed' vs 'another-seed'"):
        compare.compare([a, other_seed], tmp_path / "cmp")
    fewer = _run(tmp_path / "c", "guesser.gguf", n=2)
    with pytest.raises(UserError, match=r"different instances of codeqa \(only in .*a: \['codeqa/4k/2'\]\)"):
        compare.compare([a, fewer], tmp_path / "cmp")
    split = _run(tmp_path / "d", "guesser.gguf")
    run_json = split / "run.json"
    run_json.write_text(json.dumps({**json.loads(run_json.read_text()), "split": "test"}))
    with pytest.raises(UserError, match="split None vs 'test'"):
        compare.compare([a, split], tmp_path / "cmp")
    assert not (tmp_path / "cmp" / "compare.md").exists()


def test_compare_reports_the_split(tmp_path: Path, scripted_models: None) -> None:
    dirs = [_run(tmp_path / name, root) for name, root in (("a", "reader.gguf"), ("b", "guesser.gguf"))]
    for d in dirs:
        meta = json.loads((d / "run.json").read_text())
        (d / "run.json").write_text(json.dumps({**meta, "split": "test"}))
    md = compare.compare(dirs, tmp_path / "cmp")["table"].read_text()
    assert "Split: test." in md


def test_compare_cli_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    outcore = Path(sys.executable).with_name("outcore")
    res = subprocess.run([str(outcore), "bench", "compare", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .endswith(f"{tmp_path}: no results.jsonl (not an `outcore bench` result folder)")
    )
    res = subprocess.run([str(outcore), "bench", "comprae", "x"], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "unknown bench command 'comprae'" in res.stderr
