"""What an evaluation leaves behind, and the stage-5 checks.

In the output folder (``outputs/<run>/eval/`` for a run):
  - ``records.jsonl``  one line per record: prompt, expected, answer, verdict, checks, reasons;
  - ``eval_log.md``    metrics against targets, the worst examples per bucket with why they
                       failed, then one line for every failure;
  - ``eval_log.csv``   metric, value, target, status — one row per figure;
  - ``summary.json``   the same figures for programs (the advice stage reads it).
And project-wide, ``outputs/eval_history.csv``: one row per evaluation, so runs compare.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

from engine import checklist
from engine.evaluate.core import BUCKET_ORDER, EvalResult, Row
from engine.runs import atomic_write

HISTORY_COLUMNS = ("time", "run", "source", "n", "overall", "tool.json_valid",
                   "tool.tool_correct", "tool.args_valid", "tool.args_exact",
                   "tool_neg.no_tool_call", "style.lint_ok", "style.ast_match",
                   "guardrail.accuracy", "guardrail.false_refusals",
                   "guardrail.missed_refusals", "mixed.overall")


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def write_all(result: EvalResult, out_dir: Path, cfg: dict[str, Any], *, run: str = "",
              history: Path | None = None) -> dict[str, Path]:
    """Every report file; returns their paths by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"records": out_dir / "records.jsonl", "markdown": out_dir / "eval_log.md",
             "csv": out_dir / "eval_log.csv", "summary": out_dir / "summary.json"}
    atomic_write(paths["records"], "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n"
                                           for r in result.rows))
    atomic_write(paths["markdown"], markdown(result, cfg, run=run))
    atomic_write(paths["csv"], metrics_csv(result, cfg))
    atomic_write(paths["summary"], json.dumps(summary(result, cfg, run=run), indent=2) + "\n")
    if history is not None:
        append_history(history, result, run=run)
        paths["history"] = history
    return paths


def summary(result: EvalResult, cfg: dict[str, Any], *, run: str = "") -> dict[str, Any]:
    return {"run": run, "source": result.source, "time": round(time.time(), 3),
            "metrics": result.metrics, "targets": result.targets(cfg),
            "all_met": result.all_met(cfg)}


def metrics_csv(result: EvalResult, cfg: dict[str, Any]) -> str:
    targets = {t["metric"]: t for t in result.targets(cfg)}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", "value", "target", "status"])
    for name, value in result.metrics.items():
        t = targets.get(name)
        status = "" if t is None else ("n/a" if t["met"] is None else
                                       "pass" if t["met"] else "fail")
        w.writerow([name, value, "" if t is None else t["target"], status])
    return buf.getvalue()


def append_history(path: Path, result: EvalResult, *, run: str = "") -> None:
    """One row per evaluation; a header with other columns is widened, never lost."""
    row = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "run": run, "source": result.source,
           **{k: result.metrics.get(k, "") for k in HISTORY_COLUMNS[3:]}}
    rows: list[dict[str, Any]] = []
    columns = list(HISTORY_COLUMNS)
    if path.exists():
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns += [c for c in (reader.fieldnames or []) if c not in columns]
    rows.append(row)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


def read_history(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --- eval_log.md ---------------------------------------------------------------------------
def _badness(row: Row) -> tuple:
    """Worst first: more failed checks, then lower structure similarity."""
    failed = sum(1 for ok in row.verdict.checks.values() if not ok)
    return (-failed, row.verdict.info.get("ast_similarity", 1.0), row.record.id)


def _clip(text: str, limit: int = 400) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit} more chars)"


def markdown(result: EvalResult, cfg: dict[str, Any], *, run: str = "") -> str:
    m = result.metrics
    lines = [f"# Evaluation{' of ' + run if run else ''}", "",
             f"- source: `{result.source}`", f"- records: {m['n']}",
             f"- written: {time.strftime('%Y-%m-%d %H:%M:%S')}",
             f"- overall pass rate: {pct(m['overall'])}", "",
             "## Metrics vs. targets", "",
             "| item | metric | value | target | status |", "|---|---|---|---|---|"]
    for t in result.targets(cfg):
        item = checklist.ITEMS[t["item"]]
        status = "n/a (no records)" if t["met"] is None else ("pass" if t["met"] else "**FAIL**")
        lines.append(f"| {item.title} | `{t['metric']}` | {pct(t['value'])} (n={t['n']}) | "
                     f">= {pct(t['target'])} | {status} |")
    lines += ["", "Other figures: "
              f"tool args schema-valid {pct(m.get('tool.args_valid'))}, "
              f"exact arguments {pct(m.get('tool.args_exact'))}; "
              f"style syntax OK {pct(m.get('style.syntax_ok'))}; "
              f"guardrail false refusals {m.get('guardrail.false_refusals', 0)}, "
              f"missed refusals {m.get('guardrail.missed_refusals', 0)}; "
              "mixed by rule " + ", ".join(
                  f"{r} {pct(m.get(f'mixed.{r}'))} (n={m.get(f'mixed.{r}.n', 0)})"
                  for r in BUCKET_ORDER[:4]) + ".", ""]
    failures = [r for r in result.rows if not r.verdict.passed]
    worst_n = cfg["eval"]["worst_examples"]
    lines += ["## Worst examples per bucket", ""]
    if not failures:
        lines += ["Every answer passed.", ""]
    for bucket in BUCKET_ORDER:
        group = sorted((r for r in failures if r.record.bucket == bucket), key=_badness)
        if not group:
            continue
        total = sum(1 for r in result.rows if r.record.bucket == bucket)
        lines += [f"### {bucket}: {len(group)} of {total} failed", ""]
        for row in group[:worst_n]:
            r = row.record
            lines += [f"**{r.id}** (`{r.path}:{r.line}`, rule {row.verdict.rule}) — why: "
                      + "; ".join(row.verdict.reasons), "",
                      "Request:", "", _fence(_clip(r.user_text, 300)),
                      "Expected:", "", _fence(_clip(r.output)),
                      "Answer:", "", _fence(_clip(row.answer) or "(empty)"), ""]
    if failures:
        lines += ["## Every failure", ""]
        lines += [f"- {r.record.id} [{r.record.bucket}/{r.verdict.rule}]: "
                  + "; ".join(r.verdict.reasons) for r in failures]
        lines.append("")
    return "\n".join(lines)


def _fence(text: str) -> str:
    ticks = "````" if "```" in text else "```"
    return f"{ticks}\n{text}\n{ticks}\n"


# --- check events ----------------------------------------------------------------------------
def prove(ctx: Any, result: EvalResult, logged: dict[str, Path] | None) -> None:
    """A ``check`` for every stage-5 item."""
    for t in result.targets(ctx.cfg):
        bucket = t["metric"].split(".")[0]
        fails = [r for r in result.rows if r.record.bucket == bucket and not r.verdict.passed]
        detail = {"metric": t["metric"], "n": t["n"],
                  "failures": [{"id": r.record.id, "reasons": r.verdict.reasons}
                               for r in fails[:10]]}
        if t["met"] is None:
            ctx.check(t["item"], "skip", "no records", detail=f"no {bucket} records evaluated")
            continue
        passed = round(t["value"] * t["n"])
        ctx.check(t["item"], "pass" if t["met"] else "fail",
                  f"{pct(t['value'])} ({passed}/{t['n']})", detail=detail,
                  measured=float(t["value"]))
    if logged:
        ctx.check("eval.logged", "pass", f"{logged['markdown'].name}, {logged['csv'].name}",
                  detail={k: str(v) for k, v in logged.items()})
    else:
        ctx.check("eval.logged", "skip", detail="no output folder")


def verdict_payload(verdict: Any) -> dict[str, Any]:
    """A verdict as ``sample`` events carry it: ok, a short label, and every reason."""
    label = "pass" if verdict.passed else (verdict.reasons[0] if verdict.reasons else "fail")
    return {"ok": verdict.passed, "label": label, "reasons": verdict.reasons}


def sample_events(ctx: Any, result: EvalResult, per_bucket: int = 1) -> None:
    """A few scored answers for the UI (failures first)."""
    for bucket in BUCKET_ORDER:
        rows = sorted((r for r in result.rows if r.record.bucket == bucket),
                      key=lambda r: (r.verdict.passed, _badness(r)))
        for row in rows[:per_bucket]:
            ctx.emit("sample", step=None, bucket=bucket, prompt=row.record.user_text,
                     output=row.answer, verdict=verdict_payload(row.verdict))
