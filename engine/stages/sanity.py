"""Stage 1 — sanity check: is this data fit to train on, with this model's tokenizer?

The reading and counting is :func:`engine.dataset_scan.check_data`; this module saves what it
found into the run folder and proves the stage's items with ``check`` events.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from engine.dataset_scan import Report, check_data, seq_lens
from engine.records import REASONS, split_of
from engine.stages.base import StageContext

__all__ = ["Report", "check_data", "prove", "run", "seq_lens"]

SYNTAX_REASONS = ("invalid_utf8", "invalid_json", "invalid_text", "too_deep", "duplicate_key",
                  "not_object", "duplicate")
FIELD_REASONS = ("missing_field", "not_string", "empty_field", "unknown_bucket", "bad_field",
                 "bad_tool_call")


def run(ctx: StageContext) -> str:
    cfg = ctx.cfg
    paths = list(cfg["data"]["train"]) + list(cfg["data"]["eval"])
    report = check_data(paths, cfg, ctx)
    if ctx.run_dir is not None:
        _save_problems(Path(ctx.run_dir), report)
    prove(ctx, report)
    return ctx.status_from_checks()


def _save_problems(run_dir: Path, report: Report) -> None:
    import json

    from engine.runs import atomic_write
    out = run_dir / "sanity"
    lines = "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in report.problems)
    atomic_write(out / "problems.jsonl", lines)
    summary = report.to_dict()
    summary.pop("problems")
    atomic_write(out / "report.json", json.dumps(summary, indent=2, ensure_ascii=False))


# -- proving the items ----------------------------------------------------------------------
def prove(ctx: StageContext, report: Report) -> None:
    cfg = ctx.cfg
    sc = cfg["sanity"]
    counts = report.counts()
    warn_only = set(sc["warn_only"])
    listed = sc["max_listed"]

    def listing(reasons: tuple[str, ...]) -> list[dict[str, Any]]:
        out, per = [], Counter()
        for p in report.problems:
            if p.reason in reasons and per[p.reason] < listed:
                per[p.reason] += 1
                out.append({"where": p.where, "reason": p.reason, "message": p.message})
        return out

    total_records = sum(report.records.values())
    syntax = {r: counts[r] for r in SYNTAX_REASONS if counts.get(r)}
    hard = {r: n for r, n in syntax.items() if r not in warn_only}
    detail = {"files": len(report.files), "lines": report.lines, "records": total_records,
              "problems": syntax, "explain": {r: REASONS[r] for r in syntax},
              "listed": listing(SYNTAX_REASONS), "empty_files": report.empty_files,
              "missing": report.missing}
    if report.missing or not report.files:
        status = "fail"
        value = "no JSONL files found" if not report.files else f"{len(report.missing)} missing"
    elif hard:
        status, value = "fail", f"{sum(hard.values())} bad lines"
    elif syntax:
        status, value = "warn", f"{sum(syntax.values())} lines to look at"
    else:
        status, value = "pass", f"{report.lines:,} lines OK in {len(report.files)} files"
    ctx.check("sanity.valid_jsonl", status, value, detail=detail,
              measured=float(sum(syntax.values())))

    fields = {r: counts[r] for r in FIELD_REASONS if counts.get(r)}
    # Every item below is measured on the training split: eval records never stand in for it.
    n_train = sum(n for (split, _), n in report.records.items() if split == "train")
    unloaded = len({(p.path, p.line) for p in report.problems if p.reason not in warn_only
                    and split_of(Path(p.path)) == "train"})
    ctx.check("sanity.fields", "fail" if fields else ("pass" if n_train else "fail"),
              f"{sum(fields.values())} records with field problems" if fields
              else (f"{n_train:,} training records complete" if n_train
                    else "no training records"),
              detail={"problems": fields, "explain": {r: REASONS[r] for r in fields},
                      "listed": listing(FIELD_REASONS),
                      "records": {f"{s}/{b}": n for (s, b), n in sorted(report.records.items())}})

    if report.load_error:
        ctx.check("sanity.loads", "fail", "tokenizer did not load",
                  detail={"error": report.load_error})
        for item in ("sanity.fits_seq_len", "sanity.avg_tokens", "sanity.roundtrip",
                     "sanity.samples"):
            ctx.check(item, "skip", detail="needs the model's tokenizer")
        ctx.check("sanity.totals", "skip", detail="needs the model's tokenizer")
        return

    train = report.train_tokens()
    tstats = train.summary()
    tok_detail = {"model": report.model, "template": report.template,
                  "all": tstats, "per_bucket": {b: s.summary() for b, s in
                                                sorted(report.buckets.items())},
                  "eval": report.eval_tokens.summary(),
                  "over_seq_len": {s: report.over_seq.get(s, 0) for s in seq_lens(cfg)},
                  "seq_len": seq_lens(cfg)}
    rendered = len(train.tokens)
    ctx.check("sanity.loads", "pass" if rendered and not unloaded else "fail",
              f"{unloaded:,} of {rendered + unloaded:,} training lines did not load" if unloaded
              else f"{rendered:,} training records rendered with {report.model}" if rendered
              else "no training records to render", detail=tok_detail)

    _prove_fits(ctx, report, listing(("too_long",)), tok_detail, rendered)

    mean = tstats["mean"]
    ctx.check("sanity.avg_tokens", "pass" if rendered and mean < sc["max_avg_tokens"] else "fail",
              f"mean {mean:,.0f} tokens (p95 {tstats['p95']:,}, max {tstats['max']:,})"
              if rendered else "no training records to measure",
              detail=tok_detail, measured=float(mean) if rendered else None)

    rt = report.roundtrip if rendered else {"reason": "no training records"}
    ctx.check("sanity.roundtrip", "fail" if rt.get("failed") else ("pass" if rt.get("checked")
                                                                  else "skip"),
              f"{rt.get('checked', 0) - rt.get('failed', 0)}/{rt.get('checked', 0)} exact"
              if rendered else "no training records",
              detail=rt)

    ctx.check("sanity.samples", "pass" if report.samples and rendered else "skip",
              f"{len(report.samples)} shown" if rendered else "no training records",
              detail={"samples": report.samples})

    n_train = len(train.tokens)
    tokens = tstats["total"] if n_train else 0
    lo_r, hi_r = sc["expected_records_min"], sc["expected_records_max"]
    lo_t, hi_t = sc["expected_tokens_min"], sc["expected_tokens_max"]
    inside = n_train > 0 and lo_r <= n_train <= hi_r and lo_t <= tokens <= hi_t
    notes = [] if n_train else ["no training records"]
    if not lo_r <= n_train <= hi_r:
        notes.append(f"{n_train:,} training records is outside {lo_r:,}-{hi_r:,}")
    if not lo_t <= tokens <= hi_t:
        notes.append(f"{tokens:,} training tokens is outside {lo_t:,}-{hi_t:,}")
    per_bucket = {b: len(s.tokens) for b, s in sorted(report.buckets.items())}
    ctx.check("sanity.totals", "pass" if inside else "warn",
              f"{n_train:,} records, {tokens / 1e6:.2f}M tokens",
              detail={"per_bucket": per_bucket, "notes": notes,
                      "trained_tokens": int(sum(train.trained))})


def _prove_fits(ctx: StageContext, report: Report, listed: list[dict[str, Any]],
                tok_detail: dict[str, Any], rendered: int) -> None:
    """Records longer than a stage's sequence length: over the longest one every stage would
    cut or drop them (a failure); over a shorter one only that stage leaves them out."""
    limits = seq_lens(ctx.cfg)
    over = {s: report.over_seq.get(s, 0) for s in limits}
    longest = max(limits.values())
    over_longest = sum(1 for p in report.problems if p.reason == "too_long")
    detail = {"seq_len": limits, "over_seq_len": over, "listed": listed,
              "explain": {"too_long": REASONS["too_long"]},
              "per_bucket": tok_detail["per_bucket"], "model": report.model}
    if not rendered:
        status, value = "fail", "no training records to measure"
    elif over_longest:
        status = "warn" if "too_long" in ctx.cfg["sanity"]["warn_only"] else "fail"
        value = f"{over_longest} records over {longest} tokens"
    elif any(over.values()):
        status = "warn"
        value = ", ".join(f"{n} over {s}'s {limits[s]}" for s, n in over.items() if n)
    else:
        status = "pass"
        value = "every record fits " + ", ".join(f"{s} {n}" for s, n in limits.items())
    ctx.check("sanity.fits_seq_len", status, value, detail=detail,
              measured=float(over_longest) if rendered else None)
