"""Stage 2 — dry run: overfit ~100 mixed records to prove the whole pipeline learns.

Batch 1, the dry run's sequence length, passes over the same records until the mean of the
last ``dry_run.loss_window`` losses is below ``dry_run.target_loss`` or the step cap is hit.
"""

from __future__ import annotations

from engine.stages.base import StageContext
from engine.stages.training import data_failed, prove_common, run_training
from engine.training import curves
from engine.training.data import DataError


def run(ctx: StageContext) -> str:
    dc = ctx.cfg["dry_run"]
    window, target = dc["loss_window"], dc["target_loss"]
    try:
        result, data = run_training(ctx, "dry_run", epochs=1, grad_accum=dc["grad_accum"],
                                    max_steps=dc["max_steps"],
                                    stop_when=curves.LossBelow(window, target))
    except DataError as exc:
        return data_failed(ctx, "dry_run.loss_falls", exc)
    status, value, detail = curves.loss_falls(result.losses, target, window, dc["max_steps"])
    detail["tokens_per_s"] = round(result.tokens_per_s, 1)
    detail["records"] = data.summary()
    ctx.check("dry_run.loss_falls", status, value, detail=detail, measured=detail.get("end"))
    prove_common(ctx, "dry_run", result)
    return ctx.status_from_checks() if result.status == "ok" else result.status
