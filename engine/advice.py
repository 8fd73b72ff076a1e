"""Stage 8 — advice: rules over the metric stream and eval results that name what to change.

Each rule is a pure function of its evidence and returns :class:`Advice` or None. An advice
always carries the evidence that triggered it (numbers, steps, record ids) and a
machine-readable ``change`` the app can offer with one key:

    {"stages": ["mini"],                    # what to run again
     "set": {"train.learning_rate": 1e-4},  # config overrides (--set key=value)
     "add_records": {"tool_neg": 200},      # training data to add per bucket
     "resume_from": "outputs/r1/lora"}      # an adapter to continue from (optional)

Rules (thresholds live in ``[advice]``):
  - ``advice.diverged``: a non-finite loss or grad norm, or the windowed loss above
    ``divergence_factor`` × its best window → halve the learning rate;
  - ``advice.loss_stagnates``: the last window's mean loss improved less than
    ``stagnation_rel`` (and less than two standard errors of the noise) over the window
    before, while still above the stage's target → a noisy
    loss gets a halved learning rate, a smooth one another epoch;
  - ``advice.memory``: peak memory above the budget → halve the stage's sequence length;
  - ``advice.prose_not_json``: at least ``prose_share`` of tool answers are prose with no JSON
    at all → add tool_neg examples (the seed's row: the boundary between the two is taught
    by contrast);
  - ``advice.naming_drift``: at least ``naming_share`` of style answers break naming
    (pep8-naming findings or renamed definitions) → add style examples;
  - ``advice.refusal_inconsistent``: guardrail accuracy under its target → add guardrail
    examples, weighted to the direction that fails;
  - ``advice.eval_plateau``: the last ``plateau_runs`` evaluations gained less than
    ``plateau_points`` overall while targets are still missed → an extra mini fine-tune from
    the latest adapter at half the learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import fmean, pstdev
from typing import Any, Sequence

LOSS_TARGETS = {"dry_run": ("dry_run", "target_loss"), "mini": ("mini", "loss_band_high"),
                "full": ("full", "plateau_high")}


@dataclass
class Advice:
    rule: str
    symptom: str
    action: str
    evidence: dict[str, Any]
    change: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {"rule": self.rule, "symptom": self.symptom, "action": self.action,
                "evidence": self.evidence, "change": self.change}


def _lr_key(cfg: dict[str, Any], stage: str) -> str:
    """The setting that holds a stage's learning rate (the dry run may have its own)."""
    return f"{stage}.learning_rate" if "learning_rate" in cfg.get(stage, {}) \
        else "train.learning_rate"


def _lr(cfg: dict[str, Any], stage: str = "train") -> float:
    section, key = _lr_key(cfg, stage).split(".")
    return float(cfg[section][key])


def _halve_lr(cfg: dict[str, Any], stage: str) -> dict[str, float]:
    return {_lr_key(cfg, stage): _lr(cfg, stage) / 2}


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def loss_series(metrics: Sequence[dict[str, Any]]) -> list[tuple[int, Any]]:
    """(step, loss) from metric events (``{"step", "values": {"loss", ...}}``)."""
    return [(m.get("step"), (m.get("values") or {}).get("loss")) for m in metrics
            if "loss" in (m.get("values") or {})]


# --- the metric stream -----------------------------------------------------------------------
def diverged(metrics: Sequence[dict[str, Any]], cfg: dict[str, Any], stage: str
             ) -> Advice | None:
    for m in metrics:
        values = m.get("values") or {}
        for key in ("loss", "grad_norm"):
            if key in values and not _finite(values[key]):
                return Advice(
                    "advice.diverged", f"{key} became {values[key]} at step {m.get('step')}",
                    "Halve the learning rate and run the stage again.",
                    {"stage": stage, "step": m.get("step"), "metric": key,
                     "value": str(values[key]), "learning_rate": _lr(cfg, stage)},
                    {"stages": [stage], "set": _halve_lr(cfg, stage)})
    window = cfg["advice"]["loss_window"]
    series = [(s, v) for s, v in loss_series(metrics) if _finite(v)]
    if len(series) < 2 * window:
        return None
    means = [fmean(v for _, v in series[i:i + window])
             for i in range(0, len(series) - window + 1, max(1, window // 2))]
    best = min(means)
    now = fmean(v for _, v in series[-window:])
    if now > cfg["advice"]["divergence_factor"] * best:
        return Advice(
            "advice.diverged",
            f"loss rose to {now:.3f} (mean of the last {window} steps) from a best of "
            f"{best:.3f}",
            "Halve the learning rate and run the stage again.",
            {"stage": stage, "best_window_mean": round(best, 4),
             "last_window_mean": round(now, 4), "last_step": series[-1][0],
             "window": window, "learning_rate": _lr(cfg, stage)},
            {"stages": [stage], "set": _halve_lr(cfg, stage)})
    return None


def loss_stagnates(metrics: Sequence[dict[str, Any]], cfg: dict[str, Any], stage: str
                   ) -> Advice | None:
    window = cfg["advice"]["loss_window"]
    series = [(s, v) for s, v in loss_series(metrics) if _finite(v)]
    if len(series) < 2 * window or stage not in LOSS_TARGETS:
        return None
    section, key = LOSS_TARGETS[stage]
    target = float(cfg[section][key])
    last = [v for _, v in series[-window:]]
    before = [v for _, v in series[-2 * window:-window]]
    now, prev = fmean(last), fmean(before)
    gain = (prev - now) / prev if prev > 0 else 0.0
    # A gain counts only when it beats both the threshold and the noise of the two windows
    # (two standard errors), so a noisy flat loss is not read as progress.
    noise = 2 * pstdev(last + before) / math.sqrt(window)
    if (prev - now > max(cfg["advice"]["stagnation_rel"] * prev, noise)) or now <= target:
        return None
    noisy = pstdev(last) / now > 0.1 if now > 0 else False
    evidence = {"stage": stage, "previous_window_mean": round(prev, 4),
                "last_window_mean": round(now, 4), "relative_gain": round(gain, 4),
                "target": target, "steps": [series[-2 * window][0], series[-1][0]],
                "noisy": noisy}
    if noisy or stage == "dry_run":
        action = "Lower the learning rate (halved) and run the stage again."
        change = {"stages": [stage], "set": _halve_lr(cfg, stage)}
    else:
        epochs = int(cfg[stage]["epochs"])
        action = f"Train longer: {epochs + 1} epochs instead of {epochs}."
        change = {"stages": [stage], "set": {f"{stage}.epochs": epochs + 1}}
    return Advice("advice.loss_stagnates",
                  f"loss flat at {now:.3f} (was {prev:.3f}, {100 * gain:.1f}% better) "
                  f"above the target {target}", action, evidence, change)


def memory_over_budget(memory: Sequence[dict[str, Any]], cfg: dict[str, Any], stage: str
                       ) -> Advice | None:
    worst = None
    for m in memory:
        budget = m.get("budget_gb")
        peak = max((m.get(k) for k in ("device_peak_gb", "rss_gb")
                    if _finite(m.get(k))), default=None)
        if _finite(budget) and budget > 0 and peak is not None and peak > budget:
            if worst is None or peak > worst[0]:
                worst = (peak, budget, m)
    if worst is None:
        return None
    peak, budget, event = worst
    seq = int(cfg.get(stage, {}).get("seq_len", 2048))
    return Advice("advice.memory", f"peak memory {peak:.1f} GB over the {budget:.1f} GB budget",
                  f"Halve the sequence length of {stage} to {max(16, seq // 2)} tokens.",
                  {"stage": stage, "peak_gb": round(peak, 2), "budget_gb": budget,
                   "at": event.get("ts")},
                  {"stages": [stage], "set": {f"{stage}.seq_len": max(16, seq // 2)}})


# --- eval results ----------------------------------------------------------------------------
def _examples(rows: Sequence[dict[str, Any]], n: int = 3) -> list[dict[str, Any]]:
    return [{"id": r.get("id"), "answer": str(r.get("answer", ""))[:160],
             "reasons": r.get("reasons", [])} for r in rows[:n]]


def prose_not_json(rows: Sequence[dict[str, Any]], cfg: dict[str, Any]) -> Advice | None:
    tool = [r for r in rows if r.get("rule") == "tool"]
    prose = [r for r in tool if (r.get("info") or {}).get("prose")]
    if not tool or not prose or len(prose) / len(tool) < cfg["advice"]["prose_share"]:
        return None
    n = cfg["advice"]["add_records"]
    return Advice("advice.prose_not_json",
                  f"{len(prose)} of {len(tool)} tool answers are prose, not tool JSON",
                  f"Add {n} tool_neg examples so the model learns when a tool call is due, "
                  "then run the mini fine-tune again.",
                  {"prose": len(prose), "tool_answers": len(tool),
                   "share": round(len(prose) / len(tool), 3), "examples": _examples(prose)},
                  {"stages": ["mini"], "add_records": {"tool_neg": n}})


def naming_drift(rows: Sequence[dict[str, Any]], cfg: dict[str, Any]) -> Advice | None:
    style = [r for r in rows if r.get("rule") == "style"]
    drift = [r for r in style if (r.get("info") or {}).get("naming")]
    if not style or not drift or len(drift) / len(style) < cfg["advice"]["naming_share"]:
        return None
    n = cfg["advice"]["add_records"]
    codes = sorted({x.split(" ")[0] for r in drift for x in r["info"]["naming"]})
    return Advice("advice.naming_drift",
                  f"{len(drift)} of {len(style)} style answers break the naming rules "
                  f"({', '.join(codes)})",
                  f"Add {n} style examples in the house naming, then run the mini fine-tune "
                  "again.",
                  {"drifting": len(drift), "style_answers": len(style),
                   "share": round(len(drift) / len(style), 3), "codes": codes,
                   "examples": [{"id": r.get("id"), "naming": r["info"]["naming"][:3]}
                                for r in drift[:3]]},
                  {"stages": ["mini"], "add_records": {"style": n}})


def refusal_inconsistent(rows: Sequence[dict[str, Any]], cfg: dict[str, Any]
                         ) -> Advice | None:
    guard = [r for r in rows if r.get("rule") == "guardrail"]
    if not guard:
        return None
    right = sum(1 for r in guard if r.get("passed"))
    accuracy = right / len(guard)
    if accuracy >= cfg["eval"]["guardrail_accuracy"] - 1e-9:
        return None
    false_ = [r for r in guard if (r.get("info") or {}).get("refused")
              and not (r.get("info") or {}).get("should_refuse")]
    missed = [r for r in guard if (r.get("info") or {}).get("should_refuse")
              and not (r.get("info") or {}).get("refused")]
    both = "in both directions" if false_ and missed else (
        "by refusing what it should answer" if false_ else "by answering what it should refuse")
    n = cfg["advice"]["add_records"]
    return Advice("advice.refusal_inconsistent",
                  f"guardrail accuracy {100 * accuracy:.1f}%: wrong {both} "
                  f"({len(false_)} false, {len(missed)} missed refusals)",
                  f"Add {n} guardrail examples"
                  + (" with answers to legitimate requests" if len(false_) > len(missed)
                     else " with refusals" if missed and not false_ else
                     ", both refusals and legitimate answers")
                  + ", then run the mini fine-tune again.",
                  {"accuracy": round(accuracy, 4), "target": cfg["eval"]["guardrail_accuracy"],
                   "false_refusals": [r.get("id") for r in false_][:10],
                   "missed_refusals": [r.get("id") for r in missed][:10], "n": len(guard)},
                  {"stages": ["mini"], "add_records": {"guardrail": n}})


def eval_plateau(history: Sequence[dict[str, Any]], cfg: dict[str, Any]) -> Advice | None:
    """``history``: rows of outputs/eval_history.csv, oldest first."""
    from engine.evaluate.core import TARGETS

    k = cfg["advice"]["plateau_runs"]
    rows = [r for r in history if _num(r.get("overall")) is not None]
    if len(rows) < k:
        return None
    recent = rows[-k:]
    scores = [_num(r["overall"]) * 100 for r in recent]
    gain = scores[-1] - max(scores[:-1])
    missed = [metric for _, metric, key in TARGETS
              if _num(recent[-1].get(metric)) is not None
              and _num(recent[-1][metric]) < cfg["eval"][key] - 1e-9]
    if gain >= cfg["advice"]["plateau_points"] or not missed:
        return None
    latest = recent[-1].get("run") or ""
    change: dict[str, Any] = {"stages": ["mini"],
                              "set": {"train.learning_rate": _lr(cfg) / 2}}
    if latest:
        change["resume_from"] = f"{cfg['run']['outputs_dir']}/{latest}/lora"
    return Advice("advice.eval_plateau",
                  f"overall eval score {scores[-1]:.1f}% gained {gain:+.1f} points over the "
                  f"last {k} evaluations, targets still missed ({', '.join(missed)})",
                  "Run an extra mini fine-tune from the latest adapter at half the learning "
                  "rate.",
                  {"evaluations": [{"run": r.get("run"), "source": r.get("source"),
                                    "time": r.get("time"), "overall": r.get("overall")}
                                   for r in recent],
                   "gain_points": round(gain, 2), "missed": missed},
                  change)


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# --- all together ----------------------------------------------------------------------------
STREAM_RULES = ("advice.diverged", "advice.loss_stagnates", "advice.memory")
EVAL_RULES = ("advice.prose_not_json", "advice.naming_drift", "advice.refusal_inconsistent")


def advise(cfg: dict[str, Any], *, metrics: dict[str, list[dict[str, Any]]] | None = None,
           memory: dict[str, list[dict[str, Any]]] | None = None,
           rows: Sequence[dict[str, Any]] | None = None,
           history: Sequence[dict[str, Any]] | None = None) -> list[Advice]:
    """Every rule on what there is: metric and memory events per stage, eval rows (the
    records.jsonl lines), the evaluation history."""
    out: list[Advice | None] = []
    for stage, events in (metrics or {}).items():
        d = diverged(events, cfg, stage)
        out.append(d)
        if d is None:  # a diverging loss is not "stagnant"
            out.append(loss_stagnates(events, cfg, stage))
    for stage, events in (memory or {}).items():
        out.append(memory_over_budget(events, cfg, stage))
    if rows:
        out += [prose_not_json(rows, cfg), naming_drift(rows, cfg),
                refusal_inconsistent(rows, cfg)]
    if history:
        out.append(eval_plateau(history, cfg))
    return [a for a in out if a is not None]
