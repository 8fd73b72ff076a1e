"""Stage 6 building blocks: merge an adapter, convert to GGUF, quantize, prove parity.

Each module does one step and can be used on its own (``web4tui export --model DIR`` runs the
convert and quantize steps on any supported Hugging Face folder without a run).
"""

from __future__ import annotations

from engine.context import Progress  # noqa: F401  (here: progress(done, total, message))


def no_progress(done: float, total: float, message: str) -> None:
    return None


class ExportError(ValueError):
    """A user-facing export problem; the message says what to do."""
