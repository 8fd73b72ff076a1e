"""Text charts: sparklines for the loss pane and a column plot for the full loss view.

Pure functions over numbers (no widgets), so they are cheap to test and to call per redraw.
"""

from __future__ import annotations

import math
from typing import Sequence

from engine.event_text import fmt_duration  # noqa: F401  (the panes and headers use it from here)

BARS = "▁▂▃▄▅▆▇█"
BLOCKS = " ▁▂▃▄▅▆▇█"


def resample(values: Sequence[float], width: int) -> list[float]:
    """``values`` squeezed (bucket means) or kept to at most ``width`` points."""
    n = len(values)
    if width <= 0 or n == 0:
        return []
    if n <= width:
        return list(values)
    out = []
    for i in range(width):
        lo, hi = i * n // width, max(i * n // width + 1, (i + 1) * n // width)
        chunk = values[lo:hi]
        out.append(sum(chunk) / len(chunk))
    return out


def sparkline(values: Sequence[float], width: int, lo: float | None = None,
              hi: float | None = None) -> str:
    """One line of bars; ``lo``/``hi`` fix the scale so two lines can be compared."""
    pts = [v for v in resample(values, width) if math.isfinite(v)]
    if not pts:
        return ""
    lo = min(pts) if lo is None else lo
    hi = max(pts) if hi is None else hi
    span = hi - lo or 1.0
    return "".join(BARS[min(7, max(0, int((v - lo) / span * 7.999)))] for v in pts)


def column_plot(values: Sequence[float], width: int, height: int) -> tuple[list[str], float, float]:
    """``height`` rows of filled columns (eighth-block resolution); returns rows, min, max."""
    pts = [v for v in resample(values, width) if math.isfinite(v)]
    if not pts or height <= 0:
        return [], 0.0, 0.0
    lo, hi = min(pts), max(pts)
    span = hi - lo or 1.0
    eighths = [round((v - lo) / span * (height * 8 - 1)) + 1 for v in pts]
    rows = []
    for row in range(height - 1, -1, -1):  # top row first
        base = row * 8
        rows.append("".join(BLOCKS[min(8, max(0, e - base))] for e in eighths))
    return rows, lo, hi


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"
