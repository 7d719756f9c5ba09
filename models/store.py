"""Where model files live on disk, which are present and intact, and how names resolve to paths.

Hashing a 1 GB file takes seconds, so a successful verification leaves a small stamp beside the file
(``<file>.verified``: size, mtime and sha256). A stamp that still matches the file means "verified" without
re-hashing; any change to the file invalidates it. ``outcore models verify`` always re-hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from models.cache import cache_root
from models.catalog import ModelSpec, builtin_catalog, default_model
from models.errors import ModelNotFoundError, ModelsError, UnknownModelError, VerificationError
from models.gguf_info import is_gguf

ENV_MODELS_DIR = "OUTCORE_MODELS_DIR"
LOCAL_REGISTRY = "local-models.json"
Status = Literal["verified", "unverified", "missing", "corrupt"]


def models_dir() -> Path:
    """The models directory: ``$OUTCORE_MODELS_DIR`` or ``<cache root>/models``."""
    env = os.environ.get(ENV_MODELS_DIR)
    return Path(env).expanduser() if env else cache_root() / "models"


def sha256_file(path: Path, progress: Callable[[int], None] | None = None, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
            if progress:
                progress(len(block))
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def write_stamp(path: Path, sha256: str) -> None:
    st = path.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    tmp = _stamp_path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, _stamp_path(path))


def stamp_matches(path: Path, sha256: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return stamp == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


@dataclass(frozen=True)
class LocalModel:
    """A GGUF file the user registered with ``outcore models add`` (kept in place, never copied)."""

    name: str
    path: Path
    size: int
    sha256: str
    architecture: str
    context_length: int | None
    parameter_count: int
    has_chat_template: bool


@dataclass(frozen=True)
class ModelEntry:
    """One row of ``outcore models list``: a catalog model or a registered local one."""

    name: str
    source: Literal["catalog", "local"]
    path: Path
    size: int
    sha256: str
    status: Status
    default_for: str | None = None


class ModelStore:
    """The models directory plus the catalog: the single place that knows where each model is."""

    def __init__(self, root: Path | None = None, catalog: dict[str, ModelSpec] | None = None) -> None:
        self.root = root or models_dir()
        self.catalog = catalog if catalog is not None else builtin_catalog()

    # -- local registry -------------------------------------------------------------------------------
    def _registry_path(self) -> Path:
        return self.root / LOCAL_REGISTRY

    def local_models(self) -> dict[str, LocalModel]:
        try:
            raw = json.loads(self._registry_path().read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise ModelsError(f"cannot read {self._registry_path()}: {e}") from e
        return {name: LocalModel(**{**v, "path": Path(v["path"])}) for name, v in raw.items()}

    def save_local(self, model: LocalModel) -> None:
        if model.name in self.catalog:
            raise ModelsError(f"{model.name!r} is a catalog model name; choose another with --name")
        models = self.local_models()
        models[model.name] = model
        self.root.mkdir(parents=True, exist_ok=True)
        data = {n: {**m.__dict__, "path": str(m.path)} for n, m in models.items()}
        tmp = self._registry_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self._registry_path())

    # -- status ---------------------------------------------------------------------------------------
    def path_for(self, spec: ModelSpec) -> Path:
        return self.root / spec.file

    @staticmethod
    def _status(path: Path, size: int, sha256: str) -> Status:
        try:
            actual = path.stat().st_size
        except OSError:
            return "missing"
        if actual != size:
            return "corrupt"
        return "verified" if stamp_matches(path, sha256) else "unverified"

    def entries(self) -> list[ModelEntry]:
        rows = [
            ModelEntry(s.name, "catalog", p, s.size, s.sha256, self._status(p, s.size, s.sha256), s.default_for)
            for s in self.catalog.values()
            for p in [self.path_for(s)]
        ]
        rows += [
            ModelEntry(m.name, "local", m.path, m.size, m.sha256, self._status(m.path, m.size, m.sha256))
            for m in self.local_models().values()
        ]
        return rows

    def entry(self, name: str) -> ModelEntry:
        for e in self.entries():
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.entries())
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}")

    def verify(self, entry: ModelEntry, progress: Callable[[int], None] | None = None) -> None:
        """Re-hash ``entry``'s file; raises VerificationError (and drops the stamp) when it does not match."""
        if entry.status == "missing":
            raise ModelNotFoundError(f"model {entry.name!r} is not on disk ({entry.path})")
        actual_size = entry.path.stat().st_size
        if actual_size != entry.size:
            _stamp_path(entry.path).unlink(missing_ok=True)
            raise VerificationError(
                f"{entry.path}: size is {actual_size} bytes, expected {entry.size}; " + self._refetch_hint(entry)
            )
        digest = sha256_file(entry.path, progress)
        if digest != entry.sha256:
            _stamp_path(entry.path).unlink(missing_ok=True)
            raise VerificationError(
                f"{entry.path}: sha256 is {digest}, expected {entry.sha256}; " + self._refetch_hint(entry)
            )
        write_stamp(entry.path, digest)

    @staticmethod
    def _refetch_hint(entry: ModelEntry) -> str:
        if entry.source == "catalog":
            return f"the file is damaged: fetch it again with `outcore models fetch {entry.name} --force`"
        return f"the file changed since it was added: re-register it with `outcore models add {entry.path}`"

    # -- resolution -----------------------------------------------------------------------------------
    def resolve(self, name_or_path: str | os.PathLike[str]) -> Path:
        """Turn a model name (catalog, registered, or role alias root/worker/test) or a .gguf path into a path.

        The file is checked before it is handed to llama.cpp: a missing model says how to fetch it, a
        never-verified catalog model is hashed once, and a path that is not GGUF is refused.
        """
        text = os.fspath(name_or_path)
        if text in ("root", "worker", "test"):
            text = default_model(text, self.catalog).name
        names = {e.name for e in self.entries()}
        if text not in names:
            path = Path(text).expanduser()
            if path.is_file():
                if not is_gguf(path):
                    raise ModelsError(f"{path} is not a GGUF model file")
                return path
            if os.sep in text or text.endswith(".gguf"):
                raise ModelNotFoundError(f"model file {path} does not exist")
        entry = self.entry(text)
        if entry.status == "missing":
            hint = (
                f"run `outcore models fetch {entry.name}`"
                if entry.source == "catalog"
                else f"the file registered as {entry.name!r} was moved or deleted"
            )
            raise ModelNotFoundError(f"model {entry.name!r} is not on disk ({entry.path}); {hint}")
        if entry.status != "verified":
            self.verify(entry)
        return entry.path


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """Path of a verified model file for a name or path, in the default models directory."""
    return ModelStore().resolve(name_or_path)
