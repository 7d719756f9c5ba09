"""Route llama.cpp's own log lines into outcore's JSON-lines log instead of raw stderr.

llama.cpp prints loader chatter (and harmless warnings such as Qwen's "control-looking token") straight to stderr,
which breaks quiet, scriptable output. Its lines become debug events here, and its ERROR lines info events: a
failure that matters also fails the llama.cpp call, which the backend turns into a BackendError with a clear message.
"""

from __future__ import annotations

import ctypes

import llama_cpp

from engine.log import get_logger, log

_log = get_logger("llama_cpp")
_LEVELS = {3: "info"}  # GGML_LOG_LEVEL_ERROR; NONE/INFO/WARN/DEBUG -> debug
_pending: list[str] = []
_pending_level = "debug"


@llama_cpp.llama_log_callback
def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _pending_level
    piece = text.decode("utf-8", errors="replace")
    if level != 5:  # 5 continues the previous message
        _pending_level = _LEVELS.get(level, "debug")
    _pending.append(piece)
    if piece.endswith("\n"):
        line = "".join(_pending).strip()
        _pending.clear()
        if line:
            log(_log, _pending_level, line)


def install(raw_stderr: bool = False) -> None:
    """Make llama.cpp log through outcore, or (``raw_stderr``) print everything as llama-cpp-python's verbose mode.

    The callback is process-wide: the last backend created decides.
    """
    if raw_stderr:
        import llama_cpp._logger as llama_logger

        llama_logger.set_verbose(True)
        llama_cpp.llama_log_set(llama_logger.llama_log_callback, ctypes.c_void_p(0))
    else:
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
