"""Everything the engine said about one item or stage, written for people (never raw JSON).

Pure functions from the run state (and the run folder's own files, such as stage 1's list of
every bad line) to Content markup lines; :mod:`web4tui.screens.result` shows them scrolled.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from engine import checklist
from engine.protocol import read_events
from web4tui.charts import column_plot, fmt_duration
from web4tui.glyphs import markup, word
from web4tui.run_state import TRAINING_STAGES, RunState

#: Stage 1 items whose evidence is a list of bad lines, and the reasons each one owns.
LINE_ITEMS = {"sanity.valid_jsonl", "sanity.fields"}
TOKEN_ITEMS = {"sanity.loads", "sanity.avg_tokens"}
MAX_LINES = 2000  # bad lines shown; the rest are counted (problems.jsonl has them all)


def lines_for(key: str, state: RunState, cfg: dict[str, Any] | None,
              run_dir: Path | None) -> list[str]:
    if key in checklist.ITEMS:
        return item_lines(key, state, cfg, run_dir)
    return stage_lines(key, state, cfg, run_dir)


# -- items ------------------------------------------------------------------------------------
def item_lines(key: str, state: RunState, cfg: dict[str, Any] | None,
               run_dir: Path | None) -> list[str]:
    item = checklist.ITEMS[key]
    status = state.item_status(key)
    check = state.checks.get(key) or {}
    out = [markup(status, f"{checklist.render(item.title, cfg)} — {word(status, item=True)}"),
           "", f"[b]target[/b]    {esc(checklist.render(item.target, cfg))}"]
    if check.get("value") not in (None, ""):
        out.append(f"[b]measured[/b]  {esc(check['value'])}")
    out.append(f"[b]how[/b]       {esc(checklist.render(item.proof, cfg))}")
    detail = check.get("detail")
    if not check:
        out += ["", "[$text-muted]not measured yet: run its stage (r) to prove it[/]"]
        return out
    out.append("")
    if key in LINE_ITEMS and isinstance(detail, dict):
        out += bad_lines(detail, run_dir, set((cfg or {}).get("sanity", {}).get("warn_only", [])))
    elif key in TOKEN_ITEMS and isinstance(detail, dict):
        out += token_table(detail)
    elif key == "sanity.samples" and isinstance(detail, dict):
        out += samples(detail.get("samples") or [])
    elif isinstance(detail, dict) and isinstance(detail.get("failures"), list):
        out += failures(detail)
    elif detail not in (None, "", {}, []):
        out += ["[b]what the engine reported[/b]", *pretty(detail)]
    return out


def bad_lines(detail: dict[str, Any], run_dir: Path | None,
              warn_only: set[str] = frozenset()) -> list[str]:
    """Counts per reason, then every bad line as ``file:line  reason  message``."""
    reasons = set(detail.get("problems") or {})
    explain = detail.get("explain") or {}
    listed = _all_problems(run_dir, reasons) or [
        {"where": p.get("where", "?"), "reason": p.get("reason", "?"),
         "message": p.get("message", "")} for p in detail.get("listed") or []
        if isinstance(p, dict)]
    counts = Counter(detail.get("problems") or {}) or Counter(p["reason"] for p in listed)
    out: list[str] = []
    for missing in detail.get("missing") or []:
        out.append(f"[$error]✗ {esc(missing)}[/]")
    if not counts:
        if not out:
            out.append("[$success]no bad lines[/]")
        return out
    out.append(f"[b]{sum(counts.values())} lines flagged, by reason[/b]")
    width = max(len(r) for r in counts)
    for reason, n in counts.most_common():
        note = "  (a warning only: sanity.warn_only)" if reason in warn_only else ""
        out.append(f"  {esc(reason):<{width}}  {n:>6,}  {esc(explain.get(reason, ''))}{note}")
    out += ["", "[b]every bad line[/b] (file:line  reason, then what is wrong)"]
    for p in listed[:MAX_LINES]:
        # The message on its own line: file:line and reason stay whole at 80 columns.
        out += [f"  {esc(short_path(p['where']))}  [$error]{esc(p['reason'])}[/]",
                f"      {esc(p['message'])}"]
    shown = len(listed[:MAX_LINES])
    if sum(counts.values()) > shown:
        out.append(f"  [$text-muted]… {sum(counts.values()) - shown:,} more in "
                   f"sanity/problems.jsonl[/]")
    return out


def _all_problems(run_dir: Path | None, reasons: set[str]) -> list[dict[str, Any]]:
    """Every bad line from the run folder (the check event lists a capped number)."""
    if run_dir is None or not reasons:
        return []
    path = run_dir / "sanity" / "problems.jsonl"
    out: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                try:
                    p = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(p, dict) and p.get("reason") in reasons:
                    out.append({"where": f"{p.get('file')}:{p.get('line')}",
                                "reason": p["reason"], "message": p.get("message", "")})
                    if len(out) > MAX_LINES:
                        break
    except OSError:
        return []
    return out


def token_table(detail: dict[str, Any]) -> list[str]:
    """Tokens per record for each training bucket, the training total and the eval split."""
    rows = [(b, s) for b, s in sorted((detail.get("per_bucket") or {}).items())
            if isinstance(s, dict)]
    for name in ("all", "eval"):
        if isinstance(detail.get(name), dict):
            rows.append(("train total" if name == "all" else "eval", detail[name]))
    out = [f"[b]tokens per record[/b] (chat template applied) with {esc(detail.get('model', ''))}"]
    if not rows:
        return out + ["  no records were counted"]
    head = ("bucket", "records", "mean", "p50", "p95", "max", "total", "trained")
    table = [head] + [(b, *(_num(s.get(k)) for k in ("records", "mean", "p50", "p95", "max",
                                                    "total", "trained_tokens")))
                      for b, s in rows]
    out += ["  " + line for line in columns(table)]
    over, seq = detail.get("over_seq_len") or {}, detail.get("seq_len") or {}
    if seq:
        out += ["", "records over each stage's sequence length: " + ", ".join(
            f"{s} ({seq[s]} tokens) {over.get(s, 0)}" for s in seq)]
    return out


def samples(items: Iterable[dict[str, Any]]) -> list[str]:
    """Each sample as the model sees it; the trained tokens (the completion) between ⟦ ⟧."""
    out: list[str] = []
    for i, s in enumerate(items, 1):
        out += [f"[b]sample {i}[/b]  {esc(short_path(str(s.get('record', ''))))}  bucket "
                f"{esc(s.get('bucket', '?'))}  prompt {_num(s.get('prompt_tokens'))} tokens, "
                f"trained {_num(s.get('trained_tokens'))} tokens",
                esc(str(s.get("prompt", "")).rstrip("\n")),
                f"[$success]⟦{esc(s.get('completion', ''))}⟧[/]", ""]
    return out or ["no samples were shown"]


def failures(detail: dict[str, Any]) -> list[str]:
    fails = [f for f in detail["failures"] if isinstance(f, dict)]
    if not fails:
        return ["[$success]no failures[/]"]
    out = [f"[b]{len(fails)} answer{'s' if len(fails) != 1 else ''} that failed, and why[/b]"]
    for f in fails:
        reasons = f.get("reasons") or []
        out.append(f"  ✗ {esc(f.get('id', '?'))} — "
                   + esc("; ".join(map(str, reasons)) if isinstance(reasons, list) else reasons))
    return out


# -- stages -----------------------------------------------------------------------------------
def stage_lines(key: str, state: RunState, cfg: dict[str, Any] | None,
                run_dir: Path | None) -> list[str]:
    spec = checklist.stage(key)
    st = state.stage_state(key)
    out = [markup(st, f"{spec.number}. {spec.title} — {word(st)}"), esc(spec.summary), ""]
    if key in state.stage_duration:
        out.append(f"took {fmt_duration(state.stage_duration[key])}")
    block = state.block(key)
    if st == "blocked" and block:
        out += [f"[$warning]⊘ {esc(block.get('reason', ''))}[/]",
                f"r on this stage offers to run {esc(block.get('run_first', 'the one it needs'))}"
                " first", ""]
    if spec.needs:
        out.append("needs: " + ", ".join(_need(n) for n in spec.needs))
    out += ["", "[b]items[/b]"]
    for item in spec.items:
        status = state.item_status(item.id)
        value = (state.checks.get(item.id) or {}).get("value")
        out.append("  " + markup(status, checklist.render(item.title, cfg)
                                 + (f" — {value}" if value not in (None, "") else "")))
    if key in TRAINING_STAGES:
        out += training(key, state, run_dir)
    if key == "eval" and run_dir is not None:
        out += worst_answers(run_dir)
    return out


def _need(need: str) -> str:
    if need in checklist.ITEMS:
        return f"“{checklist.ITEMS[need].title}”"
    s = checklist.stage(need)
    return f"{s.number}. {s.title}"


def training(key: str, state: RunState, run_dir: Path | None = None) -> list[str]:
    """The stage's loss curve and memory peaks: live from the state when it is the stage on
    screen, else read back from the run's events (the state keeps one curve)."""
    if state.loss_stage == key and state.loss.raw:
        hist = state.loss
        steps, raw, smooth = hist.steps, hist.raw, hist.smooth
        metric, peaks, budget = state.metric, state.peaks, state.memory.get("budget_gb")
    else:
        steps, raw, smooth, metric, peaks, budget = _replay(key, run_dir)
    out: list[str] = []
    if raw:
        out += ["", f"[b]loss[/b] over {len(raw)} points, steps {steps[0]}–{steps[-1]}: "
                    f"first {raw[0]:.3f}, last {raw[-1]:.3f}, smoothed {smooth[-1]:.3f}"]
        rows, lo, hi = column_plot(smooth, 60, 6)
        out += [f"  {hi:6.3f} ┤{rows[0]}", *[f"         │{r}" for r in rows[1:-1]],
                f"  {lo:6.3f} ┤{rows[-1]}"] if rows else []
        figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in metric.items() if k != "loss")
        if figures:
            out.append(f"last step: {esc(figures)}")
    if peaks:
        out += ["", "[b]memory[/b] (peaks)" + (f", budget {budget:.1f} GB"
                                                if isinstance(budget, (int, float)) else "")]
        names = {"rss_gb": "process", "device_gb": "device", "device_peak_gb": "device peak",
                 "system_used_gb": "system"}
        out += [f"  {names.get(k, k):<12} {v:.2f} GB" for k, v in peaks.items()]
    return out


def _replay(key: str, run_dir: Path | None) -> tuple[list[int], list[float], list[float],
                                                      dict[str, Any], dict[str, float], Any]:
    """Loss, smoothed loss, last metrics and memory peaks of the stage's latest run."""
    state = RunState()
    if run_dir is not None:
        state.apply(ev for ev in read_events(run_dir / "events.jsonl")
                    if ev.stage == key and ev.type in ("stage_started", "metric", "memory"))
    if state.loss_stage != key:
        return [], [], [], {}, {}, None
    h = state.loss
    return h.steps, h.raw, h.smooth, state.metric, state.peaks, state.memory.get("budget_gb")


def worst_answers(run_dir: Path) -> list[str]:
    """The eval log's worst examples per bucket, with why each one failed."""
    try:
        text = (run_dir / "eval" / "eval_log.md").read_text(encoding="utf-8")
    except OSError:
        return []
    part = text.split("## Worst examples per bucket", 1)
    if len(part) < 2:
        return []
    body = part[1].split("\n## ", 1)[0].strip("\n")
    return ["", "[b]worst answers per bucket[/b] (from eval/eval_log.md)",
            *[esc(line) for line in body.splitlines() if not line.startswith("```")]]


# -- formatting -------------------------------------------------------------------------------
def pretty(value: Any, indent: int = 1) -> list[str]:
    """Nested dicts and lists as indented lines of ``key: value`` and ``• item``."""
    pad = "  " * indent
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                out += [f"{pad}{esc(k)}:", *pretty(v, indent + 1)]
            else:
                out.append(f"{pad}{esc(k)}: {esc(_scalar(v))}")
        return out
    if isinstance(value, list):
        out = []
        for v in value:
            if isinstance(v, (dict, list)) and v:
                inner = pretty(v, indent + 1)
                out.append(f"{pad}• {inner[0].strip()}")
                out += inner[1:]
            else:
                out.append(f"{pad}• {esc(_scalar(v))}")
        return out
    return [f"{pad}{esc(line)}" for line in str(value).splitlines()]


def columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                      for i, (c, w) in enumerate(zip(r, widths))) for r in rows]


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    if v in (None, "", [], {}):
        return "—"
    return str(v)


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "—" if v is None else str(v)


def short_path(where: str) -> str:
    """A path under the working directory reads relative to it."""
    cwd = os.getcwd() + os.sep
    return where[len(cwd):] if where.startswith(cwd) else where


def esc(value: Any) -> str:
    return str(value).replace("[", r"\[")
