"""The demo document: pinned, idempotent, >= 1M tokens, planted facts present exactly once."""

from __future__ import annotations

import pytest

from engine import demo


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    try:
        return demo.build_document(tmp_path_factory.mktemp("demo") / "doc.txt")
    except RuntimeError as e:
        pytest.fail(str(e))


def test_document_pinned_and_large(doc):
    assert doc.sha256 == demo.DOCUMENT_SHA256
    assert doc.chars >= 4_000_000 * 2  # two Bibles: ~8.6M characters, ~2M tokens (>= 1M at 4+ chars/token)
    text = doc.path.read_text(encoding="utf-8")
    for passage in demo.PLANTED:
        assert text.count(passage) == 1
    assert text.count("Calloway") == 3


def test_build_is_idempotent(doc):
    mtime = doc.path.stat().st_mtime_ns
    again = demo.build_document(doc.path)
    assert again.sha256 == doc.sha256 and doc.path.stat().st_mtime_ns == mtime


def test_is_correct():
    assert demo.is_correct("A brass compass")
    assert not demo.is_correct("a small grey boat")
