"""``outcore serve`` refuses a bad config with one clear line (exit status 2) before loading anything, and the pure
request-mapping rules (context vs task, answer shaping) hold."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from server.contexts import ContextStore
from server.rlm_requests import MAX_QUESTION_CHARS, build_inputs, shape_answer
from server.schemas import parse_chat, parse_text
from tests.server_support import OUTCORE


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nmax_queu = 3\n", "server.max_queu: Extra inputs are not permitted"),
        ("[server]\nport = 99999\n", "server.port"),
        ('[models.x]\nkind = "rlm"\nlimits = { max_root_turns = -1 }\n', "models.x.limits.max_root_turns"),
        ('[models.x]\nkind = "rlm"\nlimits = { max_rot_turns = 1 }\n', "unknown limit(s) max_rot_turns"),
        ('[models.x]\nkind = "plain"\n', "a plain model needs model"),
        ('[models."bad name"]\nkind = "plain"\nmodel = "smollm2-135m"\n', "model name 'bad name'"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, toml: str, message: str) -> None:
    cfg = tmp_path / "outcore.toml"
    cfg.write_text(toml)
    r = subprocess.run([str(OUTCORE), "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("outcore: error: ") and message in lines[0], r.stderr


def test_missing_config_file_and_empty_key_file(tmp_path: Path) -> None:
    r = subprocess.run(
        [str(OUTCORE), "serve", "--config", str(tmp_path / "nope.toml")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "config file not found" in r.stderr
    keys = tmp_path / "keys"
    keys.write_text("# no keys here\n")
    r = subprocess.run([str(OUTCORE), "serve", "--api-key-file", str(keys)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "holds no key" in r.stderr


def test_context_and_task_from_messages(tmp_path: Path) -> None:
    store = ContextStore(tmp_path, 4, 10_000_000)

    def inputs(messages: list[dict[str, str]]) -> tuple[object, str | None]:
        p, q, _ = build_inputs(parse_chat({"model": "m", "messages": messages}), store, 10_000_000)
        return p, q

    # one short message: the whole prompt is the task (a drop-in LLM call)
    assert inputs([{"role": "user", "content": "Write a haiku."}]) == ("Write a haiku.", None)
    # a history: everything before the last user message is the context, the last one the question
    p, q = inputs(
        [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "What did I say?"},
        ]
    )
    assert q == "What did I say?" and p == "[system]\nBe terse.\n\n[user]\nHi\n\n[assistant]\nHello"
    # a huge single message (document + question) is the prompt itself
    doc = "x" * (MAX_QUESTION_CHARS + 1)
    assert inputs([{"role": "system", "content": "sys"}, {"role": "user", "content": doc}]) == (
        ["[system]\nsys", doc],
        None,
    )
    # the text route: an explicit question makes the prompt the context
    p2, q2, _ = build_inputs(parse_text({"model": "m", "prompt": "some text", "question": "What?"}), store, 100)
    assert (p2, q2) == ("some text", "What?")


def test_answer_shaping_honours_stop_and_max_tokens() -> None:
    def count(t: str) -> int:
        return len(t.split())

    assert shape_answer("one two three", (), None, count) == ("one two three", None)
    assert shape_answer("one two. three", (".",), None, count) == ("one two", "stop")
    text, cut = shape_answer("one two three four", (), 2, count)
    assert cut == "length" and count(text) <= 2 and text.startswith("one two")
