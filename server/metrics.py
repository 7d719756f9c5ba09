"""Prometheus metrics (``GET /metrics``), named like llama-server's and vLLM's with an ``outcore_`` prefix.

Why a registry per app: tests build several apps in one process, and prometheus-client's global registry would
refuse the second set of names.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "outcore_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.running = Gauge("outcore_requests_running", "requests being computed (RLM runs and plain)", registry=r)
        self.queued = Gauge("outcore_requests_queued", "requests waiting for a slot", registry=r)
        self.runs = Counter(
            "outcore_runs", "finished RLM runs by model and finish reason", ["model", "finish_reason"], registry=r
        )
        self.tokens = Counter(
            "outcore_tokens",
            "tokens by served model, role (root, worker, child_root, plain) and kind (prompt, completion)",
            ["model", "role", "kind"],
            registry=r,
        )
        self.cached = Counter(
            "outcore_cached_prompt_tokens",
            "prompt tokens whose KV state was reused (shared prefix, session history)",
            ["model", "role"],
            registry=r,
        )
        self.sub_calls = Counter("outcore_sub_calls", "worker prompts and child runs", ["model"], registry=r)
        self.latency = Histogram(
            "outcore_run_latency_seconds",
            "end-to-end latency of completions by served model",
            ["model"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, float("inf")),
            registry=r,
        )
        self.sessions = Gauge("outcore_sessions", "multi-turn sessions kept", registry=r)
        self.models_ready = Gauge("outcore_models_ready", "1 once every served model is loaded", registry=r)

    def record_usage(self, model: str, by_role: dict[str, dict[str, Any]], sub_calls: int) -> None:
        for role, u in by_role.items():
            self.tokens.labels(model, role, "prompt").inc(int(u.get("prompt_tokens", 0) or 0))
            self.tokens.labels(model, role, "completion").inc(int(u.get("completion_tokens", 0) or 0))
            self.cached.labels(model, role).inc(int(u.get("cached_tokens", 0) or 0))
        if sub_calls:
            self.sub_calls.labels(model).inc(sub_calls)

    def render(self) -> bytes:
        return generate_latest(self.registry)
