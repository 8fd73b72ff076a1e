"""What the three training stages share: load, prepare data, train, and report.

Each stage module (dry_run, mini, full) only says how it trains (its plan) and how its items
are proved from the result; the loop is :mod:`engine.training.loop`, the backend one of
:mod:`engine.backends`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from engine import backends, call_format, models
from engine.backends import distributed
from engine.context import StageContext
from engine.records import load_tools
from engine.render import Renderer
from engine.training import curves, loop, ranks
from engine.training.data import DataError, StageData, prepare, probe_records
from engine.training.plan import TrainPlan


def run_training(ctx: StageContext, stage: str, *, epochs: int, grad_accum: int,
                 max_steps: int | None = None,
                 stop_when: Callable[[list[float]], bool] | None = None) -> tuple[Any, StageData]:
    """Train one stage; returns (TrainResult, StageData). Raises DataError for bad data."""
    cfg = ctx.cfg
    make_backend = backend_for(cfg)
    choice = backends.select(cfg)
    try:
        n, why = distributed.processes(cfg, choice.backend, choice.device)
    except distributed.WorldError as exc:
        raise DataError(str(exc)) from None
    folder, tok, data, renderer = materials(ctx, stage)
    ctx.emit("log", level="info", message=f"{stage} data: " + json.dumps(data.summary()))
    run_dir = Path(ctx.run_dir) if ctx.run_dir is not None else Path(cfg["run"]["outputs_dir"])
    plan = TrainPlan(stage=stage, grad_accum=grad_accum, epochs=epochs, max_steps=max_steps,
                     stop_when=stop_when, checkpoint_root=run_dir / "checkpoints" / stage,
                     adapter_dir=adapter_dir(run_dir, stage), resume=ctx.resume)
    if n == 1 and cfg["train"]["processes"] not in ("auto", 1):
        ctx.emit("log", level="warning", message=f"train.processes = "
                 f"{cfg['train']['processes']} is taken as 1: {why}")
    if n > 1:
        if grad_accum < n:
            ctx.emit("log", level="warning", message=(
                f"{stage}.grad_accum = {grad_accum} records per step on {n} processes: "
                f"{n - grad_accum} of them idle each step; raise it to a multiple of {n}"))
        pinned = pinned_precision(cfg, choice)
        ctx.emit("log", level="info", message=(
            f"training {stage} on {n} processes under {ranks.LAUNCHER} "
            f"({cfg['train']['strategy']}, {distributed.transport(choice.device)}, "
            f"{pinned['train']['precision']} on every process; {why})"))
        result = ranks.train(ctx, plan, n, run_dir, cfg=pinned)
    else:
        result = loop.train(ctx, plan, data, make_backend(folder, tok, ctx.emit), tok,
                            probe_records(cfg), renderer)
    ctx.summary.update(summary(result, data))
    if plan.adapter_dir.is_dir():  # later stages check what the model was taught to emit
        call_format.record_trained(plan.adapter_dir, renderer.call_format, tok.chat_template)
    return result, data


def materials(ctx: StageContext, stage: str) -> tuple[Path, Any, StageData, Renderer]:
    """The model folder, tokenizer, prepared records and renderer a stage trains with."""
    cfg = ctx.cfg

    def progress(done: int, total: int, msg: str) -> None:
        ctx.emit("log", level="info", message=f"model: {msg}")

    folder = models.resolve(cfg["model"]["id"], cfg["model"]["cache_dir"], progress)
    tok = models.load_tokenizer(folder, cfg["model"]["trust_remote_code"])
    data = prepare(stage, cfg, tok)
    renderer = Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"]["tools"]))
    return folder, tok, data, renderer


def backend_for(cfg: dict[str, Any]) -> Callable[..., loop.Backend]:
    """What builds the training backend :func:`engine.backends.select` chose (refusing early,
    before the model loads, a setting that backend cannot do)."""
    choice = backends.select(cfg)
    if choice.backend == "mlx":
        try:
            from engine.backends.mlx_lora import MLXLoRA
        except ImportError as exc:
            raise DataError(f"train.backend is mlx but mlx cannot be imported ({exc}); "
                            "install mlx-lm or set train.backend=\"torch\"") from exc
        return lambda folder, tok, emit: MLXLoRA(cfg, folder, tok, emit)
    if str(cfg["train"].get("quantize_base", "off")) != "off":
        raise DataError("train.quantize_base needs the mlx backend (no bitsandbytes); "
                        "set train.backend=\"mlx\" or train.quantize_base=\"off\"")
    from engine.backends.torch_device import place
    from engine.backends.torch_lora import TorchLoRA

    return lambda folder, tok, emit, world=distributed.SINGLE: TorchLoRA(
        cfg, folder, tok, place(cfg, choice), emit, world)


def pinned_precision(cfg: dict[str, Any], choice: backends.Choice) -> dict[str, Any]:
    """``cfg`` with the number format decided once, here: processes that each timed their own
    matmul could choose differently, and sharded weights must agree."""
    return {**cfg, "train": {**cfg["train"], "precision": choice.precision}}


def adapter_dir(run_dir: Path, stage: str) -> Path:
    """``lora/`` holds the full run's adapter, the one export and deploy use; earlier stages
    keep theirs apart (``<stage>/lora/``)."""
    return run_dir / "lora" if stage == "full" else run_dir / stage / "lora"


def data_failed(ctx: StageContext, item: str, exc: DataError) -> str:
    ctx.emit("error", message=str(exc), detail=None,
             hint="Run `web4tui check` on the data, or change the stage settings.")
    ctx.check(item, "fail", "cannot train", detail={"error": str(exc)})
    return "failed"


def prove_common(ctx: StageContext, stage: str, result: Any) -> None:
    """The items every training stage shares: no NaN, no device errors, memory."""
    nan_item = f"{stage}.no_nan"
    if nan_item in _items(stage):
        bad = curves.first_non_finite(result.losses + result.grad_norms)
        if result.nan_step is not None or bad is not None:
            ctx.check(nan_item, "fail", f"non-finite at step {result.nan_step}",
                      detail={"step": result.nan_step})
        else:
            ctx.check(nan_item, "pass", f"{len(result.losses)} steps finite",
                      detail={"max_grad_norm": max(result.grad_norms, default=0.0)})
    dev_item = f"{stage}.no_device_errors"
    if dev_item in _items(stage):
        ctx.check(dev_item, "fail" if result.device_error else "pass",
                  result.device_error or f"none on {result.placement}",
                  detail={"error": result.device_error})
    mem_item = f"{stage}.memory"
    if mem_item in _items(stage):
        over = result.peak_memory_gb > result.budget_gb or result.memory_stop
        ctx.check(mem_item, "fail" if over else "pass",
                  f"peak {result.peak_memory_gb:.2f} GB of {result.budget_gb:.1f} GB budget",
                  detail={"peak_gb": result.peak_memory_gb, "budget_gb": result.budget_gb,
                          "stopped": result.memory_stop},
                  measured=float(result.peak_memory_gb))


def _items(stage: str) -> set[str]:
    from engine import checklist
    return {i.id for i in checklist.stage(stage).items}


def summary(result: Any, data: StageData) -> dict[str, Any]:
    """The stage's figures for its ``stage_finished`` event."""
    return {"steps": result.steps, "total_steps": result.total_steps,
            "final_loss": result.losses[-1] if result.losses else None,
            "tokens_per_s": round(result.tokens_per_s, 1), "tokens": result.tokens,
            "seconds": round(result.seconds, 1), "peak_memory_gb": round(result.peak_memory_gb, 3),
            "placement": result.placement, "resumed_from": result.resumed_from,
            "data": data.summary()}
