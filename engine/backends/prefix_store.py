"""On-disk store of shared-prefix KV states, so a new process does not recompute a long system prompt.

A saved state is only valid for the exact model file, the context settings it was computed under and the exact
prefix tokens (llama.cpp checks little more than the architecture name when loading). All three go into the file
name (a sha256), and the loader re-checks the tokens stored inside the file, so a stale or foreign file is simply
not used. The model is identified cheaply — size plus sha256 of its first and last MiB — because hashing a 30 GB
file on every start is not acceptable; a changed model file changes its size or its head/tail bytes in practice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from models import cache_root

FORMAT_VERSION = 1
_MIB = 1 << 20


def default_cache_dir() -> Path:
    """``$OUTCORE_PREFIX_CACHE`` or ``<cache root>/prefix-kv`` (see ``models.cache_root``)."""
    env = os.environ.get("OUTCORE_PREFIX_CACHE")
    return Path(env).expanduser() if env else cache_root() / "prefix-kv"


def model_fingerprint(path: Path) -> str:
    """A stable, cheap identity for a model file: its size and the sha256 of its first and last MiB."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_MIB))
        if size > _MIB:
            f.seek(max(size - _MIB, _MIB))
            h.update(f.read(_MIB))
    return h.hexdigest()


def prefix_key(model_fp: str, settings: dict[str, object], tokens: Sequence[int]) -> str:
    """The file key for one prefix: model fingerprint, context settings and the prefix tokens."""
    h = hashlib.sha256()
    h.update(f"v{FORMAT_VERSION}|{model_fp}|".encode())
    h.update(repr(sorted(settings.items())).encode())
    h.update(b"|")
    h.update(",".join(map(str, tokens)).encode())
    return h.hexdigest()


class PrefixStore:
    """Maps a prefix key to a file path; writes go through a temp file + rename so readers never see halves."""

    def __init__(self, directory: Path, max_bytes: int = 2 << 30) -> None:
        self.dir = directory
        self.max_bytes = max_bytes  # oldest files are deleted beyond this total

    def path_for(self, key: str) -> Path:
        return self.dir / f"{key}.kvseq"

    def temp_path_for(self, key: str) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / f"{key}.{os.getpid()}.tmp"

    def sum_path_for(self, key: str) -> Path:
        return self.dir / f"{key}.sha256"

    def commit(self, tmp: Path, key: str) -> None:
        """Publish a saved state and, next to it, its size and sha256: the only proof a later load accepts."""
        digest = _file_digest(tmp)
        os.replace(tmp, self.path_for(key))
        side = self.dir / f"{key}.{os.getpid()}.sha256.tmp"
        side.write_text(digest)
        os.replace(side, self.sum_path_for(key))
        self.prune()

    def verified(self, key: str) -> bool:
        """True when the state file is whole: its size and sha256 match what :meth:`commit` recorded.

        Why before llama.cpp sees it: ``llama_state_seq_load_file`` aborts the whole process on a truncated file
        (found by the red team), so a cut-short, overwritten or foreign file must never reach it. A file that fails
        the check is deleted (it would fail forever); one without its checksum yet (a commit in progress) is left.
        """
        path, side = self.path_for(key), self.sum_path_for(key)
        try:
            if not path.exists():
                return False
            want = side.read_text().strip()
        except OSError:
            return False
        try:
            ok = _file_digest(path) == want
        except OSError:
            ok = False
        if not ok:
            self.discard(key)
        return ok

    def prune(self) -> None:
        """Keep the store under ``max_bytes``: every distinct system prompt leaves a file of ~10-25 KB/token."""
        try:
            files = sorted(self.dir.glob("*.kvseq"), key=lambda p: p.stat().st_mtime, reverse=True)
            total = 0
            for f in files:
                total += f.stat().st_size
                if total > self.max_bytes:
                    f.unlink(missing_ok=True)
                    f.with_suffix(".sha256").unlink(missing_ok=True)
        except OSError:
            pass

    def discard(self, key: str) -> None:
        for p in (self.path_for(key), self.sum_path_for(key)):
            try:
                p.unlink()
            except OSError:
                pass


def _file_digest(path: Path) -> str:
    """``"<size> <sha256>"`` of a file (a 2k-token state of a 1.5B model, ~40 MB, hashes in tens of ms)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_MIB):
            h.update(chunk)
            size += len(chunk)
    return f"{size} {h.hexdigest()}"
