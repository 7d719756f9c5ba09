"""The models a server serves, loaded once and shared by every request.

Why a registry object that the app receives (instead of the app loading models itself): the HTTP layer must be
testable with any engine — real llama.cpp models, an ``openai:`` worker pool, or scripted backends — and the same
loaded backend must be shared when two served entries name it (``rlm`` and ``rlm-small`` share the 0.5B worker).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic.fields import FieldInfo

from server.config import Settings

if TYPE_CHECKING:  # the engine (llama.cpp, the sandbox) is imported when models load, not when the CLI starts
    from engine.backends.base import Backend
    from engine.rlm import RLM

_log = logging.getLogger("outcore.server")


def limit_fields() -> dict[str, FieldInfo]:
    """The engine's declared limits: name -> pydantic field (description, default)."""
    from engine.guardrails import Limits

    return dict(Limits.model_fields)


def validate_limits(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Check limit overrides against the engine's ``Limits`` (its bounds and messages); raises ValueError."""
    from engine.guardrails import Limits

    known = limit_fields()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    from pydantic import ValidationError

    try:
        Limits(**values)
    except ValidationError as e:  # one line, naming the limit: "models.rlm.limits.max_root_turns: ... >= 1"
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        raise ValueError(f"{where}.{loc}: {err.get('msg')} (got {err.get('input')!r})") from None
    return dict(values)


@dataclass
class RLMModel:
    """An RLM pair served under ``name``: one :class:`engine.RLM` shared by all its requests."""

    name: str
    rlm: RLM
    limits: dict[str, Any] = field(default_factory=dict)  # the configured limits (requests may only lower them)
    description: str = ""
    kind: str = "rlm"

    @property
    def root(self) -> Backend:
        return self.rlm.root

    def effective_limit(self, name: str) -> Any:
        """The served value of limit ``name`` (a request may only lower the ``max_*`` ones)."""
        return self.limits.get(name, getattr(self.rlm.limits, name, None))

    def meta(self) -> dict[str, Any]:
        return {
            "kind": "rlm",
            "root": self.rlm.root.info.name,
            "worker": self.rlm.worker.info.name,
            "worker_backend": self.rlm.worker.info.backend,
            "limits": self.limits,
            "description": self.description,
        }

    def healthy(self) -> bool:
        return all(bool(getattr(b, "healthy", True)) for b in (self.rlm.root, self.rlm.worker))


@dataclass
class PlainModel:
    """A plain model served under ``name``: each request is one ``chat`` call, token-streamed."""

    name: str
    backend: Backend
    description: str = ""
    kind: str = "plain"

    def meta(self) -> dict[str, Any]:
        info = self.backend.info
        return {"kind": "plain", "model": info.name, "backend": info.backend, "n_ctx": info.n_ctx}

    def healthy(self) -> bool:
        return bool(getattr(self.backend, "healthy", True))


ServedModel = RLMModel | PlainModel


@dataclass
class Registry:
    """Served models by name, plus every backend they hold (closed once, after the last request)."""

    models: dict[str, ServedModel]
    backends: list[Backend] = field(default_factory=list)
    created: int = 0
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str) -> ServedModel | None:
        return self.models.get(name)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for m in self.models.values():
            if isinstance(m, RLMModel):
                try:
                    m.rlm.close()
                except Exception:  # noqa: BLE001 - closing the rest matters more
                    _log.warning("closing an RLM failed", exc_info=True)
        for b in self.backends:
            try:
                b.close()
            except Exception:  # noqa: BLE001
                _log.warning("closing a backend failed", exc_info=True)


def build_registry(settings: Settings) -> Registry:
    """Load every configured model (the slow part of start-up); shared backends are loaded once.

    Raises ValueError (bad option, unknown limit) or the engine's own errors (model missing, ...) with a message a
    person can act on.
    """
    from engine.backends import load_backend
    from engine.rlm import RLM

    cache: dict[str, Backend] = {}
    backends: list[Backend] = []

    def backend(spec: str, options: dict[str, Any]) -> Backend:
        key = json.dumps([spec, options], sort_keys=True, default=str)
        if key not in cache:
            _log.info("loading model", extra={"fields": {"spec": spec, "options": options}})
            try:
                cache[key] = load_backend(spec, **options)
            except TypeError as e:
                raise ValueError(f"model {spec!r}: bad option: {e}") from None
            backends.append(cache[key])
        return cache[key]

    trace: str | bool = str(settings.server.trace_dir) if settings.server.trace_dir else True
    if isinstance(trace, str):
        try:
            Path(trace).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"server.trace_dir {trace!r} cannot be created: {e.strerror or e}") from None
    models: dict[str, ServedModel] = {}
    try:
        for name, ms in settings.models.items():
            if ms.kind == "plain":
                assert ms.model is not None
                models[name] = PlainModel(name, backend(ms.model, ms.options), ms.description)
                continue
            assert ms.root is not None and ms.worker is not None
            limits = validate_limits(ms.limits, f"models.{name}.limits")
            root = backend(ms.root, ms.root_options)
            worker = backend(ms.worker, ms.worker_options)
            rlm = RLM(root=root, worker=worker, trace=trace, sub_calls=ms.sub_calls, **limits)
            models[name] = RLMModel(name, rlm, limits, ms.description)
    except BaseException:
        for b in backends:
            try:
                b.close()
            except Exception:  # noqa: BLE001
                pass
        raise
    return Registry(models, backends, created=int(time.time()))
