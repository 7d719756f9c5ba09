"""outcore engine: the RLM loop, model backends, guardrails, traces and the CLI."""

__version__ = "0.1.0"
