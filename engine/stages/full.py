"""Stage 4 — full fine-tune: every record, LoRA r/alpha/dropout from the config, the long run.

Ends with the adapter in ``outputs/<run>/lora`` (PEFT format), verified by loading it back.
"""

from __future__ import annotations

from pathlib import Path

from engine.stages.base import StageContext
from engine.stages.training import adapter_dir, data_failed, prove_common, run_training
from engine.training import curves
from engine.training.data import DataError


def run(ctx: StageContext) -> str:
    cfg = ctx.cfg
    fc, tc, lc = cfg["full"], cfg["train"], cfg["lora"]
    ctx.check("full.config", "pass",
              f"r={lc['r']} alpha={lc['alpha']} dropout={lc['dropout']} on "
              f"{','.join(lc['target_modules'])}; batch {tc['batch_size']}, grad accum "
              f"{fc['grad_accum']}, seq {fc['seq_len']}, {fc['epochs']} epoch(s)",
              detail={"lora": lc, "full": fc})
    try:
        result, _data = run_training(ctx, "full", epochs=fc["epochs"], grad_accum=fc["grad_accum"])
    except DataError as exc:
        return data_failed(ctx, "full.loss_plateau", exc)
    prove_common(ctx, "full", result)
    if result.status != "ok":
        return result.status
    status, value, detail = curves.plateau(
        result.losses, fc["plateau_low"], fc["plateau_high"], tc["smoothing"],
        fc["plateau_fraction"], fc["plateau_max_change"], tc["curve_min_points"])
    ctx.check("full.loss_plateau", status, value, detail=detail, measured=detail.get("final"))
    run_dir = Path(ctx.run_dir) if ctx.run_dir is not None else Path(cfg["run"]["outputs_dir"])
    ctx.check("full.adapter_saved", *verify_adapter(adapter_dir(run_dir, "full"), cfg))
    return ctx.status_from_checks()


def verify_adapter(folder: Path, cfg: dict) -> tuple[str, str, dict]:
    """Load the saved adapter back with PeftModel.from_pretrained onto its base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine import models

    if not (folder / "adapter_config.json").exists():
        return "fail", f"no adapter in {folder}", {}
    try:
        base = AutoModelForCausalLM.from_pretrained(models.resolve(cfg["model"]["id"],
                                                                   cfg["model"]["cache_dir"]))
        model = PeftModel.from_pretrained(base, folder)
        n = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
    except Exception as exc:  # a broken adapter is exactly what this item exists to catch
        return "fail", f"does not load: {exc}", {"path": str(folder)}
    return "pass", f"{folder} loads ({n:,} LoRA weights)", {"path": str(folder)}
