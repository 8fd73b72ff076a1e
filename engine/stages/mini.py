"""Stage 3 — mini fine-tune: ~2k records balanced over tool/style/guardrail, one epoch.

The loss must settle in the seed's band (see :func:`engine.training.curves.stable_in_band`).
The quality gates (probe prompts, evaluation against the mini targets) use the stage-5
scorers.
"""

from __future__ import annotations

from pathlib import Path

from engine.stages.base import StageContext
from engine.stages.training import adapter_dir, data_failed, prove_common, run_training
from engine.training import curves
from engine.training.data import DataError


def run(ctx: StageContext) -> str:
    mc, tc = ctx.cfg["mini"], ctx.cfg["train"]
    try:
        result, _data = run_training(ctx, "mini", epochs=mc["epochs"], grad_accum=mc["grad_accum"])
    except DataError as exc:
        return data_failed(ctx, "mini.loss_stable", exc)
    if result.status != "ok":
        prove_common(ctx, "mini", result)
        return result.status
    status, value, detail = curves.stable_in_band(
        result.losses, mc["loss_band_low"], mc["loss_band_high"], tc["smoothing"],
        mc["stable_fraction"], tc["curve_min_points"])
    ctx.check("mini.loss_stable", status, value, detail=detail, measured=detail.get("final"))
    prove_gates(ctx)
    return ctx.status_from_checks()


def prove_gates(ctx: StageContext) -> None:
    """Greedy answers of the mini adapter to held-out prompts, scored by the stage-5 rules."""
    from engine.evaluate.gates import prove_mini
    from engine.evaluate.sources import open_hf

    run_dir = Path(ctx.run_dir) if ctx.run_dir is not None else Path(ctx.cfg["run"]["outputs_dir"])
    ctx.raise_if_stopped()
    prove_mini(ctx, open_hf(adapter_dir(run_dir, "mini"), ctx.cfg))
