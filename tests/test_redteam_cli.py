"""Red team of ``outcore run``: hostile or malformed command lines, each refused fast with one clear line.

Every case runs the real CLI in a subprocess (the way a user meets it) and must end with exit status 2 (the CLI's
documented status for bad input), one ``outcore: error:`` line naming the problem, no traceback, and no model run:
each is refused before the first prefill, within seconds. Where a model must load to decide (``--n-ctx 10``), the
tiny test model (smollm2-135m) is used. The cases are listed with their results in docs/security.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = "smollm2-135m"
FAST_S = 30.0  # generous for a loaded 2-core machine; every case takes about a second


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("redteam")
    (d / "ok.txt").write_text("The lighthouse keeper is Ada.\n")
    (d / "empty.txt").write_text("")
    (d / "blank.txt").write_text("   \n\n\t\n")
    (d / "nul.txt").write_bytes(b"text\x00with a NUL byte\n" * 10)
    (d / "latin1.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1") * 10)
    (d / "binary.bin").write_bytes(bytes(range(256)) * 40)
    (d / "not-gguf.gguf").write_text("this is not a GGUF file\n")
    (d / "dir").mkdir()
    fifo = d / "fifo"
    os.mkfifo(fifo)
    return {p.name: str(p) for p in d.iterdir()} | {"dir": str(d / "dir"), "root_dir": str(d)}


# (case id, argv after `outcore run`, stdin bytes or None, words the error line must hold)
CASES = [
    ("unknown model", ["--root", "nosuchmodel", "--context", "{ok.txt}", "q"], None, ["unknown model 'nosuchmodel'"]),
    (
        "unknown worker",
        ["--root", TINY, "--worker", "nosuchmodel", "--context", "{ok.txt}", "q"],
        None,
        ["unknown model 'nosuchmodel'"],
    ),
    ("root is /etc/passwd", ["--root", "/etc/passwd", "--context", "{ok.txt}", "q"], None, ["could not load"]),
    ("root is not GGUF", ["--root", "{not-gguf.gguf}", "--context", "{ok.txt}", "q"], None, ["could not load"]),
    ("root is a directory", ["--root", "{dir}", "--context", "{ok.txt}", "q"], None, ["model file not found"]),
    (
        "--threads 0",
        ["--root", TINY, "--threads", "0", "--context", "{ok.txt}", "q"],
        None,
        ["--threads", "at least 1"],
    ),
    ("--threads -4", ["--threads", "-4", "--context", "{ok.txt}", "q"], None, ["--threads", "at least 1"]),
    ("--n-ctx 0", ["--n-ctx", "0", "--context", "{ok.txt}", "q"], None, ["--n-ctx", "at least 1"]),
    (
        "--n-ctx 10 (below the system prompt)",
        ["--root", TINY, "--n-ctx", "10", "--context", "{ok.txt}", "q"],
        None,
        ["context window", "system prompt", "--n-ctx"],
    ),
    ("--parallel 0", ["--parallel", "0", "--context", "{ok.txt}", "q"], None, ["--parallel", "at least 1"]),
    ("--n-gpu-layers -5", ["--n-gpu-layers", "-5", "--context", "{ok.txt}", "q"], None, ["--n-gpu-layers"]),
    ("--max-root-turns -1", ["--max-root-turns", "-1", "--context", "{ok.txt}", "q"], None, ["--max-root-turns"]),
    ("--max-wall-s 0", ["--max-wall-s", "0", "--context", "{ok.txt}", "q"], None, ["--max-wall-s"]),
    ("--cell-cpu-s -1", ["--cell-cpu-s", "-1", "--context", "{ok.txt}", "q"], None, ["--cell-cpu-s"]),
    ("--max-depth 10000", ["--max-depth", "10000", "--context", "{ok.txt}", "q"], None, ["--max-depth"]),
    (
        "--root-temperature nan",
        ["--root-temperature", "nan", "--context", "{ok.txt}", "q"],
        None,
        ["--root-temperature"],
    ),
    ("--root-max-tokens 1", ["--root-max-tokens", "1", "--context", "{ok.txt}", "q"], None, ["--root-max-tokens"]),
    ("--max-root-turns abc", ["--max-root-turns", "abc", "--context", "{ok.txt}", "q"], None, ["invalid int value"]),
    ("flag with a typo", ["--max-rot-turns", "3", "--context", "{ok.txt}", "q"], None, ["unrecognized arguments"]),
    ("context is a directory", ["--context", "{dir}", "q"], None, ["is a directory"]),
    ("context is a FIFO", ["--context", "{fifo}", "q"], None, ["FIFO", "not a regular file"]),
    ("context is /dev/zero", ["--context", "/dev/zero", "q"], None, ["device", "unbounded"]),
    ("context is /dev/null", ["--context", "/dev/null", "q"], None, ["device"]),
    ("context file missing", ["--context", "/nonexistent/ctx.txt", "q"], None, ["context file not found"]),
    ("context path through a file", ["--context", "{ok.txt}/x", "q"], None, ["cannot read", "not a directory"]),
    ("context file empty", ["--context", "{empty.txt}", "q"], None, ["is empty"]),
    ("context file blank", ["--context", "{blank.txt}", "q"], None, ["empty"]),
    ("context file with NUL", ["--context", "{nul.txt}", "q"], None, ["binary"]),
    ("context file latin-1", ["--context", "{latin1.txt}", "q"], None, ["not UTF-8"]),
    ("context file binary", ["--context", "{binary.bin}", "q"], None, ["binary"]),
    ("stdin not UTF-8", ["--context", "-", "q"], b"caf\xe9\n" * 5, ["not UTF-8"]),
    ("stdin empty", ["--context", "-", "q"], b"", ["empty"]),
    ("stdin with NUL", ["--context", "-", "q"], b"a\x00b\n" * 5, ["binary"]),
    ("no question, no context", [], None, ["give a question"]),
    ("blank question, no context", ["   "], None, ["empty"]),
    (
        "trace directory under a file",
        ["--root", TINY, "--trace", "{ok.txt}/traces", "--context", "{ok.txt}", "q"],
        None,
        ["cannot write the trace", "--trace"],
    ),
    (
        "trace under /proc",
        ["--root", TINY, "--trace", "/proc/outcore-traces", "--context", "{ok.txt}", "q"],
        None,
        ["cannot write the trace"],
    ),
]


def _run(argv: list[str], stdin: bytes | None) -> tuple[int, str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTCORE_TRACE")}
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", *argv],
        cwd=ROOT,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
        env=env,
    )
    return (
        out.returncode,
        out.stderr.decode("utf-8", "replace") + out.stdout.decode("utf-8", "replace"),
        (time.monotonic() - t0),
    )


@pytest.mark.parametrize(("argv", "stdin", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_command_line_is_one_clear_line(files, argv, stdin, words):
    for name, path in files.items():
        argv = [a.replace("{" + name + "}", path) for a in argv]
    rc, text, took = _run(argv, stdin)
    assert rc == 2, text
    assert "Traceback" not in text and "AttributeError" not in text, text
    errors = [line for line in text.splitlines() if "error:" in line]
    assert len(errors) == 1, text
    low = errors[0].lower()
    assert all(w.lower() in low for w in words), errors[0]
    assert took < FAST_S, f"took {took:.1f} s"
