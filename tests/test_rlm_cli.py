"""`outcore run` / `outcore demo --setup-only` / `outcore trace` through their argparse registration, with
scripted models in place of the default GGUF models (the real sandbox runs the cells)."""

from __future__ import annotations

import argparse
import io
import json

import pytest

import engine.rlm as rlm_mod
from engine import cli_run
from engine.backends.scripted import ScriptedBackend
from tests.test_rlm_loop import _wasm_available


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="outcore")
    cli_run.register(p.add_subparsers())
    return p


@pytest.fixture
def scripted_models(monkeypatch):
    if not _wasm_available():
        pytest.fail("wasm sandbox not built")
    made: dict[str, ScriptedBackend] = {}

    def fake_load(name: str, **_: object) -> ScriptedBackend:
        b = ScriptedBackend(
            ["```python\nimport re\nFINAL(re.search(r'door (\\w+)', str(context)).group(1))\n```"],
            worker="w",
            name=name,
        )
        made[name] = b
        return b

    monkeypatch.setattr(rlm_mod, "load_backend", fake_load)
    return made


def test_run_json_with_context_file(scripted_models, tmp_path, capsys):
    doc = tmp_path / "doc.txt"
    doc.write_text("x " * 1000 + "Tom Hale painted his door green\n" + "y " * 1000)
    args = _parser().parse_args(
        ["run", "--context", str(doc), "--json", "--max-root-turns", "3", "--trace", str(tmp_path), "What colour?"]
    )
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["finish_reason"] == "final" and out["answer"] == "green"
    assert set(scripted_models) == {"qwen2.5-coder-1.5b"}  # the default pair is one model in both roles
    args = _parser().parse_args(["trace", out["trace_path"]])
    args.func(args)
    assert "FINAL" in capsys.readouterr().out


def test_run_context_from_stdin_and_models(scripted_models, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Tom Hale painted his door blue\n"))
    args = _parser().parse_args(
        ["run", "-c", "-", "--root", "m-root", "--worker", "m-worker", "--trace", str(tmp_path), "colour?"]
    )
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == "blue"
    assert set(scripted_models) == {"m-root", "m-worker"}


def test_limits_options_parsed():
    args = _parser().parse_args(["run", "q", "--max-sub-calls", "7", "--max-wall-s", "12.5", "--max-depth", "0"])
    assert cli_run._limits_from(args) == {"max_sub_calls": 7, "max_wall_s": 12.5, "max_depth": 0}


def test_plan_mode_flag(scripted_models, tmp_path, capsys):
    """--plan-mode reaches the run (its strategy event says the mode); a mode that does not exist is refused."""
    args = _parser().parse_args(["run", "q", "--plan-mode", "typed"])
    assert cli_run._limits_from(args) == {"plan_mode": "typed"}
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "q", "--plan-mode", "fast"])
    doc = tmp_path / "doc.txt"
    doc.write_text("Tom Hale painted his door green\n")
    for mode in ("typed", "code"):
        args = _parser().parse_args(
            ["run", "-c", str(doc), "--json", "--plan-mode", mode, "--trace", str(tmp_path), "colour?"]
        )
        assert args.func(args) == 0
        out = json.loads(capsys.readouterr().out)
        events = [json.loads(line) for line in open(out["trace_path"])]
        assert [e["mode"] for e in events if e["event"] == "strategy"] == [mode]


def test_demo_setup_only(capsys):
    args = _parser().parse_args(["demo", "--setup-only"])
    assert args.func(args) == 0
    assert "characters" in capsys.readouterr().out


def test_bad_limits_and_prompts_are_one_line_errors(scripted_models, tmp_path, capsys):
    import engine.cli as cli

    doc = tmp_path / "d.txt"
    doc.write_text("Tom Hale painted his door red\n")
    assert cli.main(["run", "-c", str(doc), "--max-root-turns", "-1", "q?"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("outcore: error: invalid limit: --max-root-turns") and "greater than or equal to 1" in err
    assert cli.main(["run", "-c", str(doc), "--max-wall-s", "0", "--max-depth", "99", "q?"]) == 2
    err = capsys.readouterr().err
    assert "--max-wall-s" in err and "--max-depth" in err
    rand = tmp_path / "r.bin"
    rand.write_bytes(bytes(range(256)) * 800)
    assert cli.main(["run", "-c", str(rand), "q?"]) == 2
    assert "binary" in capsys.readouterr().err
    empty = tmp_path / "e.txt"
    empty.write_text("")
    assert cli.main(["run", "-c", str(empty), "q?"]) == 2
    assert "empty" in capsys.readouterr().err
    assert scripted_models == {}  # no model was loaded for any of these


def test_backend_flags_reach_the_models(scripted_models, tmp_path, monkeypatch, capsys):
    import engine.rlm as rlm_mod

    seen: list[dict] = []
    real = rlm_mod.load_backend

    def spy(name: str, **opts: object):
        seen.append(dict(opts))
        return real(name, **opts)

    monkeypatch.setattr(rlm_mod, "load_backend", spy)
    doc = tmp_path / "d.txt"
    doc.write_text("Tom Hale painted his door red\n")
    args = _parser().parse_args(
        [
            "run",
            "-c",
            str(doc),
            "--n-ctx",
            "4096",
            "--n-gpu-layers",
            "0",
            "--threads",
            "2",
            "--parallel",
            "3",
            "--trace",
            str(tmp_path),
            "q?",
        ]
    )
    assert args.func(args) == 0
    assert seen and all(o == {"n_ctx": 4096, "n_gpu_layers": 0, "n_threads": 2, "n_parallel": 3} for o in seen)


def test_limit_help_comes_from_the_declaration():
    help_text = _parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "root model turns per RLM run" in help_text and "(default 12)" in help_text


def test_live_status_counts_events():
    s = cli_run.LiveStatus(stream=io.StringIO())
    s("root_turn", {"prompt_tokens": 10, "completion_tokens": 5})
    s("subcall_end", {"n": 3, "prompt_tokens": 1, "completion_tokens": 1})
    s("cell", {})
    assert (s.turns, s.subs, s.cells, s.tokens) == (1, 3, 1, 17)
    s("root_turn_start", {"turn": 2, "depth": 0})
    assert "root turn 2" in s.phase


def test_live_status_ticks_between_events():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    s = cli_run.LiveStatus(stream=stream, tick_s=0.05)
    s("root_turn_start", {"turn": 1, "depth": 0})
    import time

    deadline = time.monotonic() + 30
    while stream.getvalue().count("\r") < 4:  # the clock is redrawn while no event arrives
        assert time.monotonic() < deadline, stream.getvalue()
        time.sleep(0.01)
    s.done()


def test_registered_in_outcore_main(scripted_models, tmp_path, capsys):
    """`outcore run`, `outcore trace` and `outcore demo` are wired into the one `outcore` command."""
    import engine.cli as cli

    assert {"models", "run", "demo", "trace"} <= set(cli.build_parser()._subparsers._group_actions[0].choices)
    doc = tmp_path / "d.txt"
    doc.write_text("Tom Hale painted his door red\n")
    assert cli.main(["run", "-c", str(doc), "--trace", str(tmp_path), "--json", "colour?"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == "red"
    assert cli.main(["trace", out["trace_path"]]) == 0
    capsys.readouterr()
    # no context: one plain root call (finish reason "direct"), which is a real answer: exit 0
    assert cli.main(["run", "--trace", str(tmp_path), "--json", "no context: a plain call"]) == 0
    assert json.loads(capsys.readouterr().out)["finish_reason"] == "direct"
    assert cli.main(["run", "-c", str(tmp_path / "missing.txt"), "q?"]) == 2
    assert "context file not found" in capsys.readouterr().err
