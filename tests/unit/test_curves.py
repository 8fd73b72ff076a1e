"""The definitions behind the training checks, on synthetic loss curves."""

from __future__ import annotations

import math

from engine.training import curves


def decay(start: float, end: float, n: int) -> list[float]:
    return [end + (start - end) * math.exp(-5 * i / n) for i in range(n)]


def test_loss_falls_passes_below_target_and_fails_above() -> None:
    status, value, detail = curves.loss_falls(decay(4.0, 0.3, 100), 1.0, 10, 300)
    assert status == "pass" and detail["start"] > 3 and detail["end"] < 1
    status, _, detail = curves.loss_falls(decay(4.0, 1.4, 300), 1.0, 10, 300)
    assert status == "fail" and detail["end"] > 1
    assert curves.loss_falls([], 1.0, 10, 300)[0] == "fail"


def test_stable_in_band() -> None:
    settle = decay(3.0, 1.2, 40) + [1.2 + 0.05 * math.sin(i) for i in range(60)]
    assert curves.stable_in_band(settle, 1.0, 1.5, 0.9, 0.3, 5)[0] == "pass"
    too_high = decay(3.0, 2.0, 100)
    assert curves.stable_in_band(too_high, 1.0, 1.5, 0.9, 0.3, 5)[0] == "fail"
    overfit = decay(3.0, 0.2, 100)
    status, value, _ = curves.stable_in_band(overfit, 1.0, 1.5, 0.9, 0.3, 5)
    assert status == "warn" and "overfitting" in value
    wild = [1.2 if i % 2 else 1.9 for i in range(100)]  # leaves the band in the tail
    assert curves.stable_in_band(wild, 1.0, 1.5, 0.0, 0.3, 5)[0] == "fail"
    assert curves.stable_in_band([1.2, 1.1], 1.0, 1.5, 0.9, 0.3, 5)[0] == "warn"


def test_plateau_needs_flat_and_in_band() -> None:
    flat = decay(3.0, 0.8, 50) + [0.8] * 200
    assert curves.plateau(flat, 0.6, 1.0, 0.9, 0.2, 0.05, 5)[0] == "pass"
    still_falling = [3.0 - 0.01 * i for i in range(220)]  # ends ~0.8 but still moving
    status, value, _ = curves.plateau(still_falling, 0.6, 1.0, 0.9, 0.2, 0.05, 5)
    assert status == "fail" and "still moving" in value
    flat_high = [1.6] * 200
    assert curves.plateau(flat_high, 0.6, 1.0, 0.9, 0.2, 0.05, 5)[0] == "fail"
    flat_low = [0.2] * 200
    assert curves.plateau(flat_low, 0.6, 1.0, 0.9, 0.2, 0.05, 5)[0] == "warn"


def test_smoothing_and_non_finite() -> None:
    assert curves.smooth([1.0, 0.0], 0.5) == [1.0, 0.5]
    assert curves.first_non_finite([1.0, float("nan"), 2.0]) == 1
    assert curves.first_non_finite([1.0, 2.0]) is None


def test_the_loss_pane_draws_the_curve_the_checks_smooth() -> None:
    from web4tui.run_state import LossHistory

    losses = [3.0, 2.5, 2.7, 1.9, 2.2, 1.4, 1.6]
    pane = LossHistory(cap=100, span=19)  # a = 1 - 2 / 20 = 0.9, train.smoothing's default
    for step, x in enumerate(losses, 1):
        pane.add(step, x)
    assert pane.smooth == curves.smooth(losses, 0.9)
