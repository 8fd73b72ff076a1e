"""What "falls", "stable" and "plateau" mean for a loss curve — the definitions the checks use.

All functions take the raw per-optimizer-step losses and return (status, value, detail). The
smoothed curve is an exponential moving average, ``s[i] = a*s[i-1] + (1-a)*x[i]``, started
from the first loss (``a`` = ``train.smoothing``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.protocol import smooth  # one definition, shared with the loss pane

Result = tuple[str, str, dict[str, Any]]


def window_mean(losses: list[float], n: int, *, first: bool = False) -> float:
    part = losses[:n] if first else losses[-n:]
    return sum(part) / len(part) if part else math.nan


@dataclass(frozen=True)
class LossBelow:
    """The dry run's early stop: the mean of the last ``window`` losses is below ``target``
    (plain data, so processes started apart can be handed the same rule)."""

    window: int
    target: float

    def __call__(self, losses: list[float]) -> bool:
        return len(losses) >= self.window and window_mean(losses, self.window) < self.target


def loss_falls(losses: list[float], target: float, window: int, max_steps: int) -> Result:
    """Dry run: the mean of the last ``window`` losses is below ``target`` within the step cap.

    The start is the mean of the first ``window`` losses (the seed expects ~3-5 there)."""
    if not losses:
        return "fail", "no training steps", {}
    start = window_mean(losses, window, first=True)
    end = window_mean(losses, window)
    detail = {"start": round(start, 4), "end": round(end, 4), "steps": len(losses),
              "window": window, "max_steps": max_steps, "target": target}
    ok = end < target and len(losses) <= max_steps
    value = f"loss {start:.2f} → {end:.2f} in {len(losses)} steps"
    return ("pass" if ok else "fail"), value, detail


def _tail(losses: list[float], fraction: float, min_points: int) -> list[float] | None:
    n = max(min_points, int(round(len(losses) * fraction)))
    return losses[-n:] if len(losses) >= min_points else None


def stable_in_band(losses: list[float], low: float, high: float, a: float, fraction: float,
                   min_points: int) -> Result:
    """Mini run: every point of the smoothed curve over the last ``fraction`` of the steps
    lies in [low, high]. Below the band is a warning (learning faster than the seed expects:
    look for overfitting), above it a failure; too few steps to judge is a warning."""
    s = smooth(losses, a)
    tail = _tail(s, fraction, min_points)
    if tail is None:
        return "warn", f"only {len(losses)} steps: too few to judge", {"steps": len(losses)}
    lo, hi = min(tail), max(tail)
    detail = {"tail_min": round(lo, 4), "tail_max": round(hi, 4), "tail_steps": len(tail),
              "band": [low, high], "final": round(s[-1], 4)}
    value = f"smoothed loss {lo:.2f}-{hi:.2f} over the last {len(tail)} steps"
    if low <= lo and hi <= high:
        return "pass", value, detail
    if hi < low:
        return "warn", value + f" (below {low}: check for overfitting)", detail
    return "fail", value, detail


def plateau(losses: list[float], low: float, high: float, a: float, fraction: float,
            max_change: float, min_points: int) -> Result:
    """Full run: over the last ``fraction`` of the steps the smoothed loss changes by at most
    ``max_change`` (relative, first to last point of that tail) — it has plateaued — and ends
    in [low, high]. Flat below the band is a warning (overfitting?); not flat yet, or flat
    above the band, fails (more epochs or another learning rate)."""
    s = smooth(losses, a)
    tail = _tail(s, fraction, min_points)
    if tail is None:
        return "warn", f"only {len(losses)} steps: too few to judge", {"steps": len(losses)}
    change = abs(tail[-1] - tail[0]) / max(abs(tail[0]), 1e-12)
    end = tail[-1]
    detail = {"tail_steps": len(tail), "relative_change": round(change, 4),
              "max_change": max_change, "final": round(end, 4), "band": [low, high]}
    value = f"smoothed loss {end:.2f}, changing {change:.1%} over the last {len(tail)} steps"
    flat = change <= max_change
    if flat and low <= end <= high:
        return "pass", value, detail
    if flat and end < low:
        return "warn", value + f" (below {low}: check for overfitting)", detail
    return "fail", value + ("" if flat else " (still moving)"), detail


def first_non_finite(values: list[float]) -> int | None:
    for i, v in enumerate(values):
        if not math.isfinite(v):
            return i
    return None
