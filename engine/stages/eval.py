"""Stage 5 — evaluation: the run's adapter answers every held-out record; each is scored.

Answers come from ``outputs/<run>/lora`` (batched greedy decoding with progress and ETA),
each kept in ``eval/answers.jsonl`` as it arrives so a stopped stage resumes; results go to ``outputs/<run>/eval/`` and a row to ``outputs/eval_history.csv``; every stage-5
item gets a ``check``. Without an adapter the items are skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path

from engine import call_format
from engine.evaluate import core, report, sources
from engine.runs import outputs_dir
from engine.stages.base import StageContext, skip_stage


def run(ctx: StageContext) -> str:
    cfg = ctx.cfg
    if ctx.run_dir is None:
        return skip_stage(ctx, "eval", "needs a run folder (use `web4tui evaluate` for files)")
    run_dir = Path(ctx.run_dir)
    adapter = run_dir / "lora"
    if not adapter.is_dir():
        return skip_stage(ctx, "eval", f"no adapter at {adapter}: the full fine-tune (stage 4) "
                                       "writes it")
    records, problems = core.load_records(list(cfg["data"]["eval"]))
    for p in problems[:20]:
        ctx.emit("log", level="warning", message=f"eval record skipped: {p}")
    records = core.select(records, cfg["eval"]["max_per_bucket"])
    if not records:
        return skip_stage(ctx, "eval", "no eval records under data.eval")

    ctx.emit("log", level="info", message=f"loading {adapter} for {len(records)} eval records")
    answer_fn = sources.open_hf(adapter, cfg)
    answer_fn.progress = lambda done, total, eta: ctx.emit(
        "progress", done=done, total=total, unit="records",
        eta_s=None if eta is None else round(eta, 1))
    answer_fn.should_stop = ctx.stop_requested
    # answers are kept in eval/ as they arrive: a stopped or killed stage resumes from them
    result = core.evaluate(records, answer_fn, cfg, source=answer_fn.label,
                           keep=run_dir / "eval",
                           note=lambda text: ctx.emit("log", level="info", message=text))
    ctx.raise_if_stopped()

    written = report.write_all(result, run_dir / "eval", cfg, run=run_dir.name,
                               history=outputs_dir(cfg) / "eval_history.csv")
    for kind in ("markdown", "csv", "records"):
        ctx.emit("artifact", kind="report", path=str(written[kind]))
    report.sample_events(ctx, result)
    report.prove(ctx, result, written)
    ctx.check("eval.tool_format", **call_format.agreement(
        call_format.trained_format(adapter), answer_fn.renderer.call_format,
        "the model's chat template"))
    return ctx.status_from_checks()
