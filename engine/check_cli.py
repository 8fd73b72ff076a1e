"""``web4tui check``: stage 1 on any files, printed for a person or as JSON for a script.

Runs in-process (no run folder): the same :func:`engine.stages.sanity.check_data` and the
same item proofs as the stage, with progress on stderr while it works.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from engine import config
from engine.event_text import ProgressLine, check_line
from engine.protocol import printable
from engine.stages import sanity
from engine.stages.base import StageContext


def check_main(paths: list[str], config_file: str | None, sets: list[str], *,
               as_json: bool) -> int:
    cfg = config.load(config_file, sets)
    if not paths:
        paths = list(cfg["data"]["train"]) + list(cfg["data"]["eval"])
    events: list[dict[str, Any]] = []
    reading = ProgressLine(tty_every_s=0.2, plain_every_s=None, pad="  ")  # a terminal only

    def emit(type: str, **payload: Any) -> None:
        events.append({"type": type, **payload})
        if type == "progress" and payload.get("unit") == "MB":
            eta = payload.get("eta_s")
            eta_txt = f", ETA {eta:.0f}s" if eta is not None else ""
            reading.show(f"  reading {payload['done']:.1f}/{payload['total']:.1f} MB{eta_txt}")
        elif type == "log" and payload.get("level") == "info" and not as_json:
            print(f"  {payload['message']}", file=sys.stderr, flush=True)

    ctx = StageContext(cfg=cfg, emit=emit)
    report = sanity.check_data(paths, cfg, ctx)
    reading.clear()
    sanity.prove(ctx, report)
    checks = [e for e in events if e["type"] == "check"]
    failed = any(c["status"] == "fail" for c in checks)
    usage_error = bool(report.missing) and not report.files
    if as_json:
        out = {"ok": not failed, "checks": checks, "report": report.to_dict()}
        # ASCII: C1 controls and undecodable file names come out as \u escapes, never raw
        print(json.dumps(out, ensure_ascii=True, indent=2, default=str))
    else:
        print_report(report, checks, cfg)
    if usage_error:
        return 2
    return 1 if failed else 0


def print_report(report: sanity.Report, checks: list[dict[str, Any]], cfg: dict[str, Any]) -> None:
    def w(text: str) -> None:  # records and file names are shown, never obeyed: ESC is escaped
        sys.stdout.write(printable(text))

    w(f"web4tui check — {len(report.files)} files, {report.lines:,} lines, "
      f"model {report.model} ({report.seconds:.1f} s)\n\n")
    for m in report.missing:
        w(f"  ✗ {m}\n")
    if report.problems:
        w("Problems (file:line  reason  message):\n")
        listed = cfg["sanity"]["max_listed"]
        shown: dict[str, int] = {}
        for p in report.problems:
            shown[p.reason] = shown.get(p.reason, 0) + 1
            if shown[p.reason] <= listed:
                w(f"  {p.where}  {p.reason}  {p.message}\n")
        hidden = {r: n - listed for r, n in shown.items() if n > listed}
        for r, n in hidden.items():
            w(f"  … and {n:,} more {r} (all of them with --json)\n")
        w("\nBy reason:\n")
        for reason, n in sorted(report.counts().items(), key=lambda kv: -kv[1]):
            warn = " (warning)" if reason in cfg["sanity"]["warn_only"] else ""
            w(f"  {n:>8,}  {reason}{warn}\n")
        w("\n")
    if report.empty_files:
        w("Empty files: " + ", ".join(report.empty_files) + "\n\n")
    if report.buckets or report.eval_tokens.tokens:
        w("Tokens per record (chat template applied):\n")
        w(f"  {'bucket':<12}{'records':>9}{'mean':>9}{'p50':>7}{'p95':>7}{'max':>8}"
          f"{'total':>12}{'trained':>12}\n")
        rows = [(b, s) for b, s in sorted(report.buckets.items())]
        rows.append(("train", report.train_tokens()))
        if report.eval_tokens.tokens:
            rows.append(("eval", report.eval_tokens))
        for name, s in rows:
            d = s.summary()
            w(f"  {name:<12}{d['records']:>9,}{d['mean']:>9,.1f}{d['p50']:>7,}{d['p95']:>7,}"
              f"{d['max']:>8,}{d['total']:>12,}{d['trained_tokens']:>12,}\n")
        over = ", ".join(f"{s} ({n} tok): {report.over_seq.get(s, 0)}"
                         for s, n in sanity.seq_lens(cfg).items())
        w(f"  records over each stage's sequence length — {over}\n\n")
    for c in checks:
        if c["item"] == "sanity.samples" and c["status"] == "pass":
            w("Random samples (trained tokens between ⟦ ⟧):\n")
            for s in c["detail"]["samples"]:
                w(f"  ── {s['record']} [{s['bucket']}] prompt {s['prompt_tokens']} tokens, "
                  f"trained {s['trained_tokens']} tokens\n")
                w(_indent(s["prompt"] + "⟦" + s["completion"] + "⟧") + "\n")
            w("\n")
    w("Checklist — stage 1:\n")
    for c in checks:
        w(f"  {check_line(c, cfg)}\n")
        if c["item"] == "sanity.totals" and c["status"] == "warn":
            for note in c["detail"].get("notes", []):
                w(f"           {note} (a warning, not a failure)\n")
        if c["item"] == "sanity.roundtrip" and c["status"] == "fail":
            for ex in c["detail"]["examples"]:
                w(f"           {ex['record']}: {ex['expected']!r} came back as {ex['got']!r}\n")
        if c["item"] == "sanity.loads" and c["status"] == "fail" and c.get("detail"):
            err = c["detail"].get("error") if isinstance(c["detail"], dict) else None
            if err:
                w(f"           {err}\n")
    failed = [c for c in checks if c["status"] == "fail"]
    w("\n" + ("FAILED: " + ", ".join(c["item"] for c in failed) if failed else "OK") + "\n")


def _indent(text: str, prefix: str = "    ") -> str:
    text = text if len(text) < 1500 else text[:700] + "\n[…]\n" + text[-700:]
    return prefix + text.replace("\n", "\n" + prefix)
