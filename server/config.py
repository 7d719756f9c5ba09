"""The server's settings and the models it serves, from a TOML file and the command line.

Why pydantic with ``extra="forbid"``: a typo in a config file (``max_queu = 4``) must stop the server with a message
that names the key, not be ignored until the first overload. Command-line flags override the file's ``[server]``
table. Each ``[models.NAME]`` table is one served model:

```toml
[server]
port = 8080
max_running = 4        # requests computed at once (RLM runs and plain completions)
max_queue = 16         # requests waiting beyond that; more get 429 with Retry-After

[models.rlm]           # an RLM pair: root + worker, with its limits
kind = "rlm"
root = "qwen2.5-coder-1.5b"
worker = "qwen2.5-coder-0.5b"          # or "openai:http://gpu-box.internal:8000/v1" (a vLLM / SGLang pool)
root_options = { n_ctx = 16384, max_sessions = 8 }
worker_options = { n_parallel = 8 }
limits = { max_root_turns = 8, max_wall_s = 300 }

[models.smollm]        # a plain model: one normal completion, token-streamed
kind = "plain"
model = "smollm2-135m"
options = { n_ctx = 2048 }
```
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import UserError

DEFAULT_ROOT = "qwen2.5-coder-1.5b"
DEFAULT_WORKER = DEFAULT_ROOT  # one loaded model in both roles, as the engine's default pair
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Strict):
    """How the HTTP face behaves: binding, auth, admission, retention. Every bound has a default."""

    host: str = Field("127.0.0.1", description="address to bind; loopback by default")
    port: int = Field(8080, ge=0, le=65535, description="TCP port; 0 picks a free one (printed at start)")
    api_keys: list[str] = Field(default_factory=list, description="accepted keys; empty: no auth")
    api_key_file: Path | None = Field(None, description="file with one key per line (added to api_keys)")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="request body limit; larger bodies get 413")
    max_context_chars: int = Field(
        60_000_000, ge=1, description="largest context (characters) one RLM request may carry; larger gets 400"
    )
    max_running: int = Field(4, ge=1, le=256, description="requests computed at once")
    max_queue: int = Field(16, ge=0, le=10_000, description="requests waiting for a slot; beyond that 429")
    retry_after_s: int = Field(2, ge=1, description="Retry-After seconds sent with 429")
    keepalive_s: float = Field(15.0, gt=0, le=300, description="SSE ':' ping interval while a stream is quiet")
    run_retention: int = Field(200, ge=1, description="finished runs kept for /v1/runs and /ui (oldest dropped)")
    run_retention_s: float = Field(3600.0, gt=0, description="finished runs older than this are dropped")
    max_events_per_run: int = Field(20_000, ge=10, description="events kept per run (later ones are counted only)")
    max_sessions: int = Field(16, ge=1, description="multi-turn sessions kept at once")
    session_idle_s: float = Field(900.0, gt=0, description="a session unused this long is closed")
    max_contexts: int = Field(32, ge=1, description="uploaded contexts kept (oldest deleted beyond that)")
    data_dir: Path | None = Field(None, description="where uploaded contexts live (default: a temporary directory)")
    trace_dir: Path | None = Field(None, description="engine JSON-lines traces (default: the engine's trace dir)")
    shutdown_grace_s: float = Field(5.0, ge=0, description="on SIGTERM, time for cancelled runs to answer")


class ModelSettings(_Strict):
    """One served model. ``kind="rlm"``: a root + worker pair with limits; ``kind="plain"``: one backend."""

    kind: Literal["rlm", "plain"] = "rlm"
    # rlm
    root: str | None = None
    worker: str | None = None
    root_options: dict[str, Any] = Field(default_factory=dict)
    worker_options: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, Any] = Field(default_factory=dict)
    sub_calls: bool = True
    # plain
    model: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    # both
    description: str = ""

    @model_validator(mode="after")
    def _check_kind(self) -> ModelSettings:
        if self.kind == "rlm":
            if self.model is not None or self.options:
                raise ValueError("an rlm model takes root/worker/root_options/worker_options, not model/options")
            self.root = self.root or DEFAULT_ROOT
            self.worker = self.worker or DEFAULT_WORKER
        else:
            if not self.model:
                raise ValueError("a plain model needs model = NAME, a .gguf path or openai:URL")
            if self.root or self.worker or self.root_options or self.worker_options or self.limits:
                raise ValueError("a plain model takes model/options, not root/worker/limits")
        return self


class Settings(_Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)  # type: ignore[arg-type]
    models: dict[str, ModelSettings] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _names(cls, v: dict[str, ModelSettings]) -> dict[str, ModelSettings]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"model name {name!r}: use letters, digits and . _ : - (at most 64)")
        return v


def default_models() -> dict[str, ModelSettings]:
    return {"rlm": ModelSettings(kind="rlm", root=DEFAULT_ROOT, worker=DEFAULT_WORKER)}


def _format_validation(e: ValidationError, where: str) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return f"{where}: " + "; ".join(parts)


def load_settings(
    path: Path | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    api_keys: list[str] | None = None,
    api_key_file: Path | None = None,
) -> Settings:
    """Settings from an optional TOML file, then the command-line overrides; raises UserError on bad input."""
    data: dict[str, Any] = {}
    where = "settings"
    if path is not None:
        where = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not valid TOML: {e}") from None
    srv = dict(data.get("server", {}))
    if host is not None:
        srv["host"] = host
    if port is not None:
        srv["port"] = port
    if api_keys:
        srv["api_keys"] = [*srv.get("api_keys", []), *api_keys]
    if api_key_file is not None:
        srv["api_key_file"] = api_key_file
    data["server"] = srv
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        raise UserError(_format_validation(e, where)) from None
    s = settings.server
    if s.api_key_file is not None:
        try:
            keys = [ln.strip() for ln in Path(s.api_key_file).read_text(encoding="utf-8").splitlines()]
        except OSError as e:
            raise UserError(f"cannot read the API key file {s.api_key_file}: {e.strerror}") from None
        keys = [k for k in keys if k and not k.startswith("#")]
        if not keys:
            raise UserError(f"the API key file {s.api_key_file} holds no key")
        s.api_keys = [*s.api_keys, *keys]
    if any(not k.strip() for k in s.api_keys):
        raise UserError("an API key must not be empty")
    if not settings.models:
        settings.models = default_models()
    from server.registry import validate_limits  # the engine's own Limits: checked before anything loads

    for name, ms in settings.models.items():
        try:
            validate_limits(ms.limits, f"models.{name}.limits")
        except ValueError as e:
            raise UserError(f"{where}: {e}") from None
    return settings
