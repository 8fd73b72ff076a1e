"""Text charts: sparklines for the loss pane and a column plot for the full loss view.

Pure functions over numbers (no widgets), so they are cheap to test and to call per redraw.
"""

from __future__ import annotations

import math
from typing import Sequence

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


def fmt_duration(seconds: float | None, coarse: bool = False) -> str:
    """1h02m, 3m05s, 42s — short enough for the header at 80 columns; ``coarse`` drops the
    seconds above a minute (3m), so a countdown changes once a minute, not every second."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(seconds)
    if coarse and s >= 60:
        return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"
