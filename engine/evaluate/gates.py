"""The mini fine-tune's quality gates (stage 3), on the stage-5 scorers.

    from engine.evaluate.gates import prove_mini
    from engine.evaluate.sources import ModelSource
    result = prove_mini(ctx, ModelSource(model, tokenizer, ctx.cfg, label="mini"))

One generation pass over the held-out tool, style and guardrail records (``data.eval``,
limited by ``eval.max_per_bucket``) proves five items:
  - ``mini.tool_json``: the first ``mini.tool_probes`` tool prompts each give valid tool JSON;
  - ``mini.style_match``: the first ``mini.style_probes`` style prompts each pass the style
    rule (house lint and AST match);
  - ``mini.eval_tool`` / ``mini.eval_style`` / ``mini.eval_guardrail``: the share of fully
    passed tool / style / guardrail records against ``mini.target_*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from engine.evaluate.core import AnswerFn, EvalResult, evaluate, load_records, select
from engine.records import Record

GATE_BUCKETS = ("tool", "style", "guardrail")


@dataclass
class Gate:
    item: str
    passed: bool | None  # None: nothing to judge
    value: str
    detail: dict[str, Any]
    measured: float | None = None  # the number judged: probes right, or the share right


def mini_records(cfg: dict[str, Any]) -> list[Record]:
    records, _ = load_records(list(cfg["data"]["eval"]))
    records = [r for r in records if r.bucket in GATE_BUCKETS]
    per_bucket = max(cfg["eval"]["max_per_bucket"], 0)
    if per_bucket:  # never fewer than the probes
        per_bucket = max(per_bucket, cfg["mini"]["tool_probes"], cfg["mini"]["style_probes"])
    return select(records, per_bucket)


def gates(result: EvalResult, cfg: dict[str, Any]) -> list[Gate]:
    """The five gates from scored rows (pure: no generation here)."""
    mini = cfg["mini"]
    by_bucket = {b: [r for r in result.rows if r.record.bucket == b] for b in GATE_BUCKETS}
    out = []
    for item, bucket, n, check in (("mini.tool_json", "tool", mini["tool_probes"], "json_valid"),
                                   ("mini.style_match", "style", mini["style_probes"], None)):
        probes = by_bucket[bucket][:n]
        ok = [r for r in probes if (r.verdict.passed if check is None
                                    else r.verdict.checks.get(check))]
        bad = [{"id": r.record.id, "reasons": r.verdict.reasons} for r in probes if r not in ok]
        out.append(Gate(item, len(ok) == n if len(probes) == n and n else None,
                        f"{len(ok)}/{len(probes)}", {"failures": bad, "asked": n},
                        float(len(ok)) if probes else None))
    for item, bucket, key in (("mini.eval_tool", "tool", "target_tool"),
                              ("mini.eval_style", "style", "target_style"),
                              ("mini.eval_guardrail", "guardrail", "target_guardrail")):
        rows = by_bucket[bucket]
        if not rows:
            out.append(Gate(item, None, "no records", {}))
            continue
        share = sum(r.verdict.passed for r in rows) / len(rows)
        out.append(Gate(item, share >= mini[key] - 1e-9, f"{100 * share:.1f}% "
                        f"({sum(r.verdict.passed for r in rows)}/{len(rows)})",
                        {"target": mini[key], "n": len(rows)}, share))
    return out


def run_gates(answer_fn: AnswerFn, cfg: dict[str, Any],
              records: Sequence[Record] | None = None) -> tuple[EvalResult, list[Gate]]:
    records = list(records) if records is not None else mini_records(cfg)
    result = evaluate(records, answer_fn, cfg, source=getattr(answer_fn, "label", "mini"))
    return result, gates(result, cfg)


def prove_mini(ctx: Any, answer_fn: AnswerFn,
               records: Sequence[Record] | None = None) -> EvalResult:
    """Generate, score and emit a ``check`` for each of the five mini items."""
    if getattr(answer_fn, "progress", False) is None:
        answer_fn.progress = lambda done, total, eta: ctx.emit(  # type: ignore[attr-defined]
            "progress", done=done, total=total, unit="eval records",
            eta_s=None if eta is None else round(eta, 1))
    result, found = run_gates(answer_fn, ctx.cfg, records)
    for g in found:
        status = "skip" if g.passed is None else ("pass" if g.passed else "fail")
        ctx.check(g.item, status, g.value, detail=g.detail, measured=g.measured)
    return result
