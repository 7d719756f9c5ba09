"""Trace files: one line per event, rebuilt into a call tree; `outcore trace` prints it."""

from __future__ import annotations

import argparse
import json

from engine.backends.scripted import ScriptedBackend
from engine.rlm import RLM
from engine.trace import TraceWriter, format_tree, read_events, register, summarize
from tests.rlm_fake_env import FakeEnvironment


def _run(tmp_path):
    root = ScriptedBackend(
        [
            "```python\nr = llm_query_batched(['a', 'b'])\nprint(r)\n```",
            "```python\nFINAL(r[0])\n```",
        ],
        name="root-m",
    )
    wk = ScriptedBackend(worker="label", name="worker-m")
    return RLM(root, wk, environment=FakeEnvironment, trace=tmp_path).completion("some text", "q?")


def test_events_written_once_and_tree(tmp_path):
    c = _run(tmp_path)
    events = read_events(c.trace_path)
    lines = open(c.trace_path).read().splitlines()
    # run_start, strategy, 2 turns (start, end), 2 cells (start, end), sub start/end, run_end
    assert len(lines) == len(events) == 13
    assert all(e["run"] == c.run_id for e in events)
    # no history is repeated: the system prompt is not in the trace at all, each code appears once
    assert sum("llm_query_batched" in ln for ln in lines) == 2  # the turn text and the cell code
    start = events[0]
    assert start["event"] == "run_start" and start["limits"]["max_depth"] == 1
    tree = format_tree(events)
    assert "batch x2" in tree and "turn 1" in tree and "end final" in tree
    s = summarize(events)
    assert s["sub_calls"] == 2 and s["root_turns"] == 2 and s["finish_reason"] == "final"
    assert set(s["tokens"]) == {"root-m", "worker-m"}
    assert "FINAL(r[0])" in tree  # the cell's code comes from its start event


def test_cli_trace_command(tmp_path, capsys):
    c = _run(tmp_path)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["trace", c.trace_path])
    assert args.func(args) == 0
    assert "run run-" in capsys.readouterr().out
    args = parser.parse_args(["trace", "--json", c.trace_path])
    args.func(args)
    assert json.loads(capsys.readouterr().out)["answer"] == "label"


def test_torn_last_line_is_ignored(tmp_path):
    p = tmp_path / "t.jsonl"
    w = TraceWriter(p)
    w.emit("run_start", id="r", parent=None)
    w.close()
    with open(p, "a") as fh:
        fh.write('{"event": "cell", "id": ')
    assert len(read_events(p)) == 1
