"""Render chat messages with the GGUF's own chat template.

Why the model's template: every instruct model was trained on one exact turn format; using another silently costs
quality. llama-cpp-python ships a Jinja2 renderer (:class:`llama_cpp.llama_chat_format.Jinja2ChatFormatter`) that
matches Transformers' behaviour; we reuse it. Models without a template fall back to ChatML, which most small
instruct models understand.
"""

from __future__ import annotations

from collections.abc import Sequence

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from engine.backends.base import Message

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ChatTemplate:
    """``render(messages)`` -> the prompt text, ending with the assistant turn's opening (generation prompt)."""

    def __init__(self, template: str | None, bos_token: str, eos_token: str) -> None:
        self.source = template or CHATML_TEMPLATE
        self.is_fallback = template is None
        self._formatter = Jinja2ChatFormatter(
            template=self.source, eos_token=eos_token, bos_token=bos_token, add_generation_prompt=True
        )

    def render(self, messages: Sequence[Message]) -> str:
        msgs = [{"role": m.role, "content": m.content} for m in messages]
        return self._formatter(messages=msgs).prompt  # type: ignore[arg-type]
