"""How long starting some stages would take, before anything is started.

Token volumes come from stage 1's count of the training records and the run config; the
speed is the latest measured training throughput of this run. Without a count or a speed the
estimate says what it lacks instead of guessing.
"""

from __future__ import annotations

from typing import Any

from web4tui.charts import fmt_duration
from web4tui.run_state import RunState

#: Stages whose start is expensive enough to ask first (they train or convert a model).
COSTLY = ("dry_run", "mini", "full", "export")


def training_tokens(stage: str, state: RunState, cfg: dict[str, Any] | None) -> float | None:
    """Tokens a training stage would process (upper bound), from stage 1's counts."""
    detail = (state.checks.get("sanity.loads") or {}).get("detail")
    stats = detail.get("all") if isinstance(detail, dict) else None
    if not isinstance(stats, dict) or not cfg or not stats.get("records"):
        return None
    mean, total = float(stats.get("mean") or 0), float(stats.get("total") or 0)
    sec = cfg.get(stage, {})
    if stage == "dry_run":  # passes over its samples until the target or the step cap
        return mean * float(sec.get("max_steps", 0)) * float(sec.get("grad_accum", 1))
    if stage == "mini":
        n = min(float(sec.get("samples", 0)), float(stats["records"]))
        return mean * n * float(sec.get("epochs", 1))
    if stage == "full":
        return total * float(sec.get("epochs", 1))
    return None


def speed(state: RunState) -> float | None:
    value = state.metric.get("tokens_per_s")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def describe(stages: list[str], state: RunState, cfg: dict[str, Any] | None) -> str:
    """One line per costly stage: tokens, and the duration at the measured speed."""
    rate = speed(state)
    lines, known = [], 0.0
    for stage in stages:
        if stage == "export":
            lines.append("  export: merge, GGUF conversion, quantization and the GGUF eval "
                         "(minutes on a small model)")
            continue
        if stage not in COSTLY:
            continue
        tokens = training_tokens(stage, state, cfg)
        if tokens is None:
            lines.append(f"  {stage}: size unknown until stage 1 has counted the tokens")
        elif rate is None:
            lines.append(f"  {stage}: up to {tokens / 1e6:.2f}M tokens (the speed is measured "
                         "by the first training stage)")
        else:
            known += tokens / rate
            lines.append(f"  {stage}: up to {tokens / 1e6:.2f}M tokens, about "
                         f"{fmt_duration(tokens / rate)} at {rate:,.0f} tokens/s")
    if known and len(lines) > 1:
        lines.append(f"  training in all: about {fmt_duration(known)}")
    return "\n".join(lines)
