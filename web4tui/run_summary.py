"""One line per run for the runs screen: status, stages passed, best eval score, date.

Reads state.json and only the tail of events.jsonl, so listing many long runs stays fast.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from engine import checklist
from engine.protocol import decode
from web4tui.glyphs import stage_state
from web4tui.runfolder import RunFolder

TAIL_BYTES = 1_000_000  # eval results sit near the end of a run's history
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class RunSummary:
    run: RunFolder
    status: str  # the run's state (see web4tui.glyphs.WORDS): the tree's word for it
    passed: int
    best_eval: float | None
    updated: str


def summarize(run: RunFolder) -> RunSummary:
    stages = run.read_state().get("stages", {})
    passed = sum(1 for s in checklist.STAGE_IDS if stages.get(s, {}).get("status") == "ok")
    path = run.events_path if run.events_path.exists() else run.root / "config.toml"
    updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    return RunSummary(run, run_state(run), passed, best_eval(run), updated)


def run_state(run: RunFolder) -> str:
    """One state for a whole run, from the same rule the tree uses for each stage."""
    status = run.status()  # running / died / new come from the engine's pid and state.json
    if status in ("running", "died"):
        return status
    if status == "new":
        return "pending"
    stages = run.read_state().get("stages", {})
    states = [stage_state(e.get("status"), (e.get("checks") or {}).values())
              for e in stages.values()]
    for worst in ("fail", "blocked", "cancelled", "warn", "pass"):
        if worst in states:
            return worst
    return "skip"


def best_eval(run: RunFolder) -> float | None:
    """The best eval score this run reported, in points (0-100): ``summary.score`` of an eval
    stage, else the mean of its eval items' measured shares (in a run whose checks carry no
    ``measured`` yet, the first number of their display text)."""
    best: float | None = None
    measured: list[float] = []
    shown: list[float] = []  # read from the display text: events written before `measured`
    for ev in _tail_events(run):
        if ev.stage != "eval":
            continue
        if ev.type == "stage_started":
            measured, shown = [], []
        elif ev.type == "check" and isinstance(ev.get("item"), str) \
                and ev.get("item") != "eval.logged":
            if ev.get("measured") is not None:
                measured.append(100.0 * ev.get("measured"))  # a share: 0.96 is 96 points
            elif (v := _number(ev.get("value"))) is not None:
                shown.append(v)
        elif ev.type == "stage_finished":
            summary = ev.get("summary") or {}
            score = _number(summary.get("score")) if isinstance(summary, dict) else None
            values = measured or shown
            if score is None and values:
                score = sum(values) / len(values)
            if score is not None:
                best = score if best is None else max(best, score)
    return best


def _tail_events(run: RunFolder):  # noqa: ANN202
    try:
        with open(run.events_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            data = fh.read()
    except FileNotFoundError:
        return
    lines = data.split(b"\n")
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first line is cut
    for raw in lines:
        ev = decode(raw)
        if ev is not None:
            yield ev


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = _NUMBER.search(str(value or ""))
    return float(m.group()) if m else None
