"""Stage 6 building blocks: merge an adapter, convert to GGUF, quantize, prove parity.

Each module does one step and can be used on its own (``web4tui export --model DIR`` runs the
convert and quantize steps on any supported Hugging Face folder without a run).
"""

from __future__ import annotations

from collections.abc import Callable

#: progress(done, total, message) — every long step reports through one of these.
Progress = Callable[[float, float, str], None]


def no_progress(done: float, total: float, message: str) -> None:
    return None


class ExportError(ValueError):
    """A user-facing export problem; the message says what to do."""
