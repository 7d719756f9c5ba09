"""Model backends behind one small protocol (see :mod:`engine.backends.base`)."""

from engine.backends.base import (
    Backend,
    BackendError,
    BackendInfo,
    ContextOverflowError,
    Generation,
    Message,
    SamplingParams,
)

__all__ = [
    "Backend",
    "BackendError",
    "BackendInfo",
    "ContextOverflowError",
    "Generation",
    "Message",
    "SamplingParams",
    "load_backend",
]


def load_backend(spec: str, **options: object) -> Backend:
    """Build a backend from a spec string; later code (RLM loop, CLI, server) uses this one entry point.

    * ``"qwen2.5-coder-0.5b"`` / ``"llama:qwen2.5-coder-0.5b"`` — a catalog model, in-process (``LlamaBackend``);
    * ``"/path/model.gguf"`` / ``"llama:/path/model.gguf"`` — a local GGUF file, in-process;
    * ``"openai:http://127.0.0.1:8080/v1"`` — an OpenAI-compatible server (``OpenAIBackend``); pass
      ``model="..."`` for servers that need a model name.

    ``options`` are fields of :class:`~engine.backends.llama.LlamaConfig` or
    :class:`~engine.backends.openai_compat.OpenAIConfig`. Imports are lazy so that importing this package never
    loads llama.cpp.
    """
    if spec.startswith("openai:"):
        from engine.backends.openai_compat import OpenAIBackend, OpenAIConfig

        return OpenAIBackend(OpenAIConfig(base_url=spec[len("openai:") :], **options))  # type: ignore[arg-type]
    from engine.backends.llama import LlamaBackend, LlamaConfig

    model = spec[len("llama:") :] if spec.startswith("llama:") else spec
    return LlamaBackend(LlamaConfig(model=model, **options))  # type: ignore[arg-type]
