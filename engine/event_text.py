"""Events as a person reads them: the glyph and word of each state, and the line each event
becomes in a command's text output.

Every command prints through here: ``web4tui run`` following a run (:class:`LinePrinter`,
one tagged line per event), the one-stage commands that work in-process (``export --model``,
``deploy --gguf``: :class:`StagePrinter`), and the reports of ``check`` and ``evaluate``
(:func:`check_line`). The app takes its glyphs and words from here too, so a state looks the
same everywhere. Stdlib-only, so the UI side may import it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from engine import checklist
from engine.protocol import printable

GLYPHS = {
    "pending": "·", "running": "▶", "pass": "✓", "warn": "!", "fail": "✗", "skip": "-",
    "cancelled": "■", "died": "☠", "ok": "✓", "failed": "✗", "skipped": "-",
    "blocked": "⊘",
}
#: The one word for each state, used by the tree, the detail, the runs list and the commands.
WORDS = {
    "pending": "not run", "running": "running", "pass": "passed", "warn": "passed with warnings",
    "fail": "failed", "skip": "skipped", "cancelled": "cancelled", "died": "engine died",
    "blocked": "blocked",
}
ITEM_WORDS = {**WORDS, "warn": "warning"}  # an item warns; a stage passes with warnings
#: Continuation lines under a one-stage command's check line line up past "✓ PASS ".
DETAIL_INDENT = " " * 7


def glyph(state: str) -> str:
    return GLYPHS.get(state, "?")


def word(state: str, *, item: bool = False) -> str:
    return (ITEM_WORDS if item else WORDS).get(state, state)


def stage_state(status: str | None, items: Iterable[str]) -> str:
    """A stage's state from its finish status and its items' statuses so far."""
    if status in ("running", "cancelled", "died", "blocked"):
        return status
    items = list(items)
    if status == "failed" or "fail" in items:
        return "fail"
    if status == "skipped" or (items and all(s == "skip" for s in items)):
        return "skip"
    if "warn" in items:
        return "warn"
    if status == "ok":
        return "pass"
    return "pending"


def fmt_duration(seconds: float | None, coarse: bool = False) -> str:
    """1h02m, 3m05s, 42s — short enough for the header at 80 columns; ``coarse`` drops the
    seconds above a minute (3m), so a countdown changes once a minute, not every second."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(seconds)
    if coarse and s >= 60:
        return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def item_title(item_id: Any, cfg: dict[str, Any] | None) -> str:
    """A checklist item's title with the config's numbers in it (the id when unknown)."""
    item = checklist.ITEMS.get(item_id)
    return checklist.render(item.title, cfg) if item else str(item_id)


def check_line(check: Mapping[str, Any], cfg: dict[str, Any] | None, style: str = "report"
               ) -> str:
    """One ``check`` event as a line, in one of three styles:

    - ``report`` (check, export, deploy): ``✓ PASS Title — value``
    - ``run`` (following a run): ``✓ pass Title — value``, and why a skipped item was skipped
    - ``score`` (evaluate): ``✓ Title: value (target T)``
    """
    status = str(check.get("status"))
    title = item_title(check.get("item"), cfg)
    value = check.get("value")
    if style == "score":
        return f"{glyph(status)} {title}: {value or ''} (target {check.get('target')})"
    if style == "run":
        detail = check.get("detail") if status == "skip" else None
        return (f"{glyph(status)} {status} {title}" + (f" — {value}" if value else "")
                + (f" ({detail})" if detail else ""))
    return f"{glyph(status)} {status.upper():<4} {title}" + (f" — {value}" if value else "")


def detail_lines(check: Mapping[str, Any]) -> list[str]:
    """What a person needs from a check's detail under its line: the text of a failed or
    skipped item, a failed comparison's table, the Ollama path and why, the server's figures
    and each smoke answer as the client received it."""
    status, detail = check.get("status"), check.get("detail")
    if isinstance(detail, str):
        return [detail] if status in ("fail", "skip") else []
    if not isinstance(detail, dict):
        return []
    lines = []
    if status == "fail" and "table" in detail:
        lines.append(detail["table"])
    if "why" in detail:
        lines.append(str(detail["why"]))
    figures = {k: detail[k] for k in ("startup_s", "smoke_s") if k in detail}
    if figures:
        lines.append(", ".join(f"{k} {v}" for k, v in figures.items()))
    for a in detail.get("answers", []):
        got = json.dumps(a["calls"], ensure_ascii=False) if a["calls"] else repr(a["content"][:160])
        lines.append(f"{a['record_id']} ({a['expect']}): finish_reason {a['finish_reason']}, "
                     f"{a['seconds']:.1f} s, {'tool_calls ' if a['calls'] else 'content '}{got}"
                     + (f" — {a['verdict']}" if a["verdict"] else ""))
    return lines


def _indented(text: str, prefix: str = DETAIL_INDENT) -> str:
    return prefix + text.replace("\n", "\n" + prefix)


class StagePrinter:
    """The ``emit`` of a one-stage command working in-process: progress and notes on stderr,
    the checklist and the files written on stdout."""

    def __init__(self, cfg: dict[str, Any], progress_every_s: float | None = 2.0) -> None:
        self.cfg = cfg
        self.every = progress_every_s  # None: no progress lines
        self.last_progress = 0.0

    def __call__(self, type: str, **payload: Any) -> None:
        if type == "progress" and self.every is not None:
            now = time.monotonic()
            total, done = payload.get("total"), payload.get("done")
            if now - self.last_progress >= self.every or (total and done == total):
                self.last_progress = now
                print(f"  {payload.get('message', '')} {done}/{total} {payload.get('unit')}",
                      file=sys.stderr, flush=True)
        elif type == "log":
            print(f"  {payload.get('message')}", file=sys.stderr, flush=True)
        elif type == "artifact":
            print(f"wrote {payload['kind']}: {payload['path']}", flush=True)
        elif type == "check":
            print(check_line(payload, self.cfg), flush=True)
            for text in detail_lines(payload):
                print(_indented(text), flush=True)


class LinePrinter:
    """Following a run: one readable line per meaningful event, tagged with its stage;
    progress at most every few seconds. Text from data is escaped, never obeyed."""

    def __init__(self, cfg: dict[str, Any] | None = None, progress_every_s: float = 2.0) -> None:
        self.cfg = cfg
        self.checks: dict[str, str] = {}  # item -> latest status
        self.every = progress_every_s
        self.last_progress = 0.0
        self.pending_start: str | None = None

    def show(self, ev: Any) -> None:
        if self.pending_start:
            if not (ev.type == "stage_finished" and ev.get("status") == "blocked"):
                print(self.pending_start, flush=True)
            self.pending_start = None
        line = self.line(ev)
        if line:
            print(printable(line), flush=True)

    def line(self, ev: Any) -> str | None:
        tag = f"[{ev.stage}]" if ev.stage else "[engine]"
        if ev.type == "hello":
            return (f"{tag} engine {ev.get('engine_version')} on {ev.get('backend')}/"
                    f"{ev.get('device')} ({ev.get('backend_reason', '')})")
        if ev.type == "stage_started":
            for item in [i for i in self.checks if i.startswith(f"{ev.stage}.")]:
                del self.checks[item]  # a stage run again is judged on its new items only
            # Said with the stage's first event: a blocked stage prints one line, not two.
            self.pending_start = f"{tag} started — {ev.get('title')}"
            return None
        if ev.type == "progress":
            now = time.monotonic()
            if now - self.last_progress < self.every:
                return None
            self.last_progress = now
            eta, done, total = ev.get("eta_s"), ev.get("done"), ev.get("total")
            # An ETA of 0 while work remains says nothing: shown only when it counts.
            counts = isinstance(eta, (int, float)) and eta >= 1 and done != total
            return (f"{tag} {done}/{total} {ev.get('unit')}"
                    + (f", ETA {fmt_duration(eta)}" if counts else ""))
        if ev.type == "check":
            self.checks[str(ev.get("item"))] = str(ev.get("status"))
            return f"{tag} {check_line(ev.payload, self.cfg, 'run')}"
        if ev.type == "metric":
            vals = ev.get("values") or {}
            return f"{tag} step {ev.get('step')} " + " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in vals.items())
        if ev.type == "sample":
            out = str(ev.get("output", "")).replace("\n", " ")
            return (f"{tag} sample @{ev.get('step')} [{ev.get('bucket')}] {ev.get('verdict')}: "
                    f"{out[:100]}{'…' if len(out) > 100 else ''}")
        if ev.type == "log" and ev.get("level") in ("warning", "error", "info"):
            return f"{tag} {ev.get('level')}: {ev.get('message')}"
        if ev.type == "error":
            return f"{tag} ERROR {ev.get('message')}" + (
                f"\n{tag}   hint: {ev.get('hint')}" if ev.get("hint") else "")
        if ev.type == "advice":
            return f"{tag} advice: {ev.get('symptom')} → {ev.get('action')}"
        if ev.type == "artifact":
            return f"{tag} wrote {ev.get('kind')}: {ev.get('path')}"
        if ev.type == "stage_finished" and ev.get("status") == "blocked":
            summary = ev.get("summary") or {}
            reason = summary.get("reason", "needs an earlier stage")
            return f"{tag} {glyph('blocked')} blocked — {reason}"
        if ev.type == "stage_finished":
            state = stage_state(str(ev.get("status")), [
                st for i, st in self.checks.items() if i.startswith(f"{ev.stage}.")])
            return f"{tag} {glyph(state)} {word(state)} in {ev.get('duration_s', 0):.1f}s"
        return None


class ProgressLine:
    """A progress line on stderr: rewritten in place on a terminal (at most every
    ``tty_every_s``); elsewhere (a log, a pipe) a plain line at most every ``plain_every_s``
    and the last one, or nothing when ``plain_every_s`` is None."""

    def __init__(self, tty_every_s: float, plain_every_s: float | None,
                 pad: str = "   ") -> None:
        self.tty = sys.stderr.isatty()
        self.gap = tty_every_s if self.tty else plain_every_s
        self.pad = pad
        self.last = 0.0 if self.tty else time.monotonic()

    def show(self, text: str, last: bool = False) -> None:
        if self.gap is None:
            return
        now = time.monotonic()
        if now - self.last < self.gap and not last:
            return
        self.last = now
        if self.tty:
            print(f"\r{text}{self.pad}", end="\n" if last else "", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def clear(self, width: int = 60) -> None:
        if self.tty:
            print("\r" + " " * width + "\r", end="", file=sys.stderr)
