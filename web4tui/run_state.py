"""What the screen shows about a run, folded from its events (no widgets in here).

Events arrive in batches (one per poll tick, thousands on replay). :meth:`RunState.apply`
folds a batch in and says which parts changed, so the screen redraws only those panes once
per tick however many events came: that is how a fast engine never makes the UI lag.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from engine import checklist
from engine.protocol import Event, smooth_next
from web4tui.glyphs import stage_state

#: The parts of the screen a batch can change (one name per pane or widget).
PARTS = ("header", "tree", "loss", "memory", "samples", "advice", "log")
TRAINING_STAGES = ("dry_run", "mini", "full")


@dataclass
class LogLine:
    level: str  # debug, info, warning, error
    stage: str | None
    text: str
    hint: str = ""


@dataclass
class LossHistory:
    """Every loss point until ``cap``; then every other point is dropped (never the newest)."""

    cap: int
    span: int
    steps: list[int] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    smooth: list[float] = field(default_factory=list)
    stride: int = 1
    seen: int = 0
    _ema: float | None = None

    def add(self, step: int, loss: float) -> None:
        # the checks' smoothing, its factor given as a span: a = 1 - 2 / (span + 1)
        self._ema = smooth_next(self._ema, loss, 1.0 - 2.0 / (self.span + 1))
        self.seen += 1
        if self.seen % self.stride:
            return
        self.steps.append(step)
        self.raw.append(loss)
        self.smooth.append(self._ema)
        if len(self.raw) > self.cap:
            self.steps, self.raw, self.smooth = self.steps[::2], self.raw[::2], self.smooth[::2]
            self.stride *= 2

    @property
    def ema(self) -> float | None:
        return self._ema


class RunState:
    def __init__(self, *, smoothing_span: int = 20, history_points: int = 4000,
                 samples_per_bucket: int = 3, log_lines: int = 500,
                 eta_window_s: float = 60.0, eta_min_fraction: float = 0.05,
                 eta_min_seconds: float = 10.0) -> None:
        self._eta_window_s = eta_window_s
        self._eta_min_fraction = eta_min_fraction
        self._eta_min_seconds = eta_min_seconds
        self._rate_points: dict[str, deque[tuple[float, float]]] = {}  # stage -> (ts, done)
        self.hello: dict[str, Any] = {}
        self.started_ts: float | None = None  # the latest engine's hello
        self.last_ts: float | None = None
        # running, ok, failed, cancelled, skipped, blocked, died
        self.stage_status: dict[str, str] = {}
        self.stage_started_ts: dict[str, float] = {}
        self.stage_duration: dict[str, float] = {}
        self.blocked: dict[str, dict[str, Any]] = {}  # stage -> the engine's block summary
        self.progress: dict[str, dict[str, Any]] = {}  # stage -> progress payload + ts
        self.checks: dict[str, dict[str, Any]] = {}
        self.current_stage: str | None = None
        self.loss = LossHistory(history_points, smoothing_span)
        self.loss_stage: str | None = None  # the stage the loss curve belongs to
        self.metric: dict[str, Any] = {}
        self.metric_step: int | None = None
        self.memory: dict[str, Any] = {}
        self.peaks: dict[str, float] = {}
        self.samples: dict[str, deque[dict[str, Any]]] = {}
        self._samples_per_bucket = samples_per_bucket
        self.advice: dict[str, dict[str, Any]] = {}  # latest per rule
        self.log: deque[LogLine] = deque(maxlen=log_lines)
        self.log_total = 0  # lines ever added: the log pane appends only what is new
        self.artifacts: list[dict[str, Any]] = []
        self.events_seen = 0
        self.engine_died = False
        self._dirty: set[str] = set()

    # -- folding --------------------------------------------------------------------------
    def apply(self, events: Iterable[Event]) -> set[str]:
        """Fold a batch in; returns the parts of the screen that changed."""
        for ev in events:
            self.events_seen += 1
            self.last_ts = ev.ts
            handler = getattr(self, "_on_" + ev.type, None)
            if handler is not None:
                handler(ev)
        dirty, self._dirty = self._dirty, set()
        return dirty

    def _mark(self, *parts: str) -> None:
        self._dirty.update(parts)

    def _on_hello(self, ev: Event) -> None:
        self.hello = ev.payload
        self.started_ts = ev.ts
        self.engine_died = False
        self._mark("header")

    def _on_stage_started(self, ev: Event) -> None:
        if not ev.stage:
            return
        self.current_stage = ev.stage
        self.stage_status[ev.stage] = "running"
        self.stage_started_ts[ev.stage] = ev.ts
        self.progress.pop(ev.stage, None)
        self._rate_points.pop(ev.stage, None)
        if self.loss.raw and ev.stage in TRAINING_STAGES:
            # Each training stage draws its own curve; later stages keep the last one shown.
            self.loss = LossHistory(self.loss.cap, self.loss.span)
            self.loss_stage = ev.stage
            self._mark("loss")
        # A re-run starts from a clean slate: its items are pending until proved again.
        prefix = ev.stage + "."
        for item in [k for k in self.checks if k.startswith(prefix)]:
            del self.checks[item]
        self._mark("header", "tree")

    def _on_stage_finished(self, ev: Event) -> None:
        if not ev.stage:
            return
        self.stage_status[ev.stage] = str(ev.get("status", "ok"))
        summary = ev.get("summary")
        if ev.get("status") == "blocked" and isinstance(summary, dict):
            self.blocked[ev.stage] = summary
        else:
            self.blocked.pop(ev.stage, None)
        duration = ev.get("duration_s")
        if isinstance(duration, (int, float)):
            self.stage_duration[ev.stage] = float(duration)
        self.progress.pop(ev.stage, None)
        if self.current_stage == ev.stage:
            self.current_stage = None
        self._mark("header", "tree")
        if ev.stage in self.blocked:
            self._add_log("warning", ev.stage, f"blocked: {self.blocked[ev.stage].get('reason')}")
        else:
            self._add_log("info", ev.stage, f"finished {ev.get('status')} in "
                          f"{_num(duration, '.1f')}s")

    def _on_progress(self, ev: Event) -> None:
        if ev.stage:
            previous = self.progress.get(ev.stage)
            self.progress[ev.stage] = {**ev.payload, "ts": ev.ts}
            done = ev.get("done")
            if isinstance(done, (int, float)):
                points = self._rate_points.setdefault(ev.stage, deque())
                if previous is not None and (previous.get("unit") != ev.get("unit")
                                             or previous.get("total") != ev.get("total")):
                    points.clear()  # a new phase of the stage (another unit): a new rate
                points.append((ev.ts, float(done)))
                while points and points[0][0] < ev.ts - self._eta_window_s:
                    points.popleft()
            self._mark("header", "tree")

    def _on_check(self, ev: Event) -> None:
        item = ev.get("item")
        if isinstance(item, str):
            self.checks[item] = {**ev.payload, "stage": ev.stage}
            self._mark("tree", "advice")

    def _on_metric(self, ev: Event) -> None:
        values = ev.get("values") or {}
        if not isinstance(values, dict):
            return
        self.metric.update(values)
        self.metric_step = ev.get("step")
        self.loss_stage = ev.stage
        loss = values.get("loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            self.loss.add(int(ev.get("step") or 0), float(loss))
        self._mark("loss")

    def _on_memory(self, ev: Event) -> None:
        self.memory = ev.payload
        for key in ("rss_gb", "device_gb", "device_peak_gb", "system_used_gb"):
            v = ev.get(key)
            if isinstance(v, (int, float)):
                self.peaks[key] = max(self.peaks.get(key, 0.0), float(v))
        self._mark("memory")

    def _on_sample(self, ev: Event) -> None:
        bucket = str(ev.get("bucket") or "?")
        self.samples.setdefault(bucket, deque(maxlen=self._samples_per_bucket)).append(
            {**ev.payload, "stage": ev.stage})
        self._mark("samples")

    def _on_advice(self, ev: Event) -> None:
        self.advice[str(ev.get("rule") or ev.get("symptom"))] = {**ev.payload, "stage": ev.stage}
        self._mark("advice")

    def _on_artifact(self, ev: Event) -> None:
        self.artifacts.append(ev.payload)
        self._add_log("info", ev.stage, f"wrote {ev.get('kind')}: {ev.get('path')}")

    def _on_log(self, ev: Event) -> None:
        self._add_log(str(ev.get("level", "info")), ev.stage, str(ev.get("message", "")))

    def _on_error(self, ev: Event) -> None:
        self._add_log("error", ev.stage, str(ev.get("message", "")), str(ev.get("hint") or ""))

    def _add_log(self, level: str, stage: str | None, text: str, hint: str = "") -> None:
        self.log.append(LogLine(level, stage, text, hint))
        self.log_total += 1
        self._mark("log")

    def mark_engine_died(self, log_tail: str) -> set[str]:
        """The engine is gone with a stage unfinished: say so where the user looks."""
        self.engine_died = True
        for stage, status in self.stage_status.items():
            if status == "running":
                self.stage_status[stage] = "died"
        self.current_stage = None
        self._add_log("error", None, "the engine stopped without finishing its stage",
                      "engine.log ends with the lines below; `r` runs the stage again")
        for line in log_tail.splitlines():
            self._add_log("debug", None, line)
        self._mark("header", "tree")
        dirty, self._dirty = self._dirty, set()
        return dirty

    # -- questions the screen asks --------------------------------------------------------
    def item_status(self, item_id: str) -> str:
        check = self.checks.get(item_id)
        if check:
            return str(check.get("status", "pending"))
        stage = item_id.split(".")[0]
        return "running" if self.stage_status.get(stage) == "running" else "pending"

    def stage_state(self, stage_id: str) -> str:
        """The stage's glyph state: its finish status, or what its items say so far."""
        items = [self.checks[i.id]["status"] for i in checklist.stage(stage_id).items
                 if i.id in self.checks]
        st = stage_state(self.stage_status.get(stage_id), items)
        if st == "pending" and self.failed_need(stage_id) is not None:
            return "blocked"  # not asked yet, but it could not start: a stage it needs failed
        return st

    def block(self, stage_id: str) -> dict[str, Any] | None:
        """Why a stage is blocked: the engine's word when it ended blocked, else the rule's."""
        if stage_id in self.blocked:
            return self.blocked[stage_id]
        b = self.failed_need(stage_id)
        return b.payload() if b is not None else None

    def failed_need(self, stage_id: str) -> checklist.Blocker | None:
        """The blocker of a stage when it comes from something that ran and failed (a stage
        merely not run yet does not make the next one look blocked)."""
        items = {k: str(c.get("status")) for k, c in self.checks.items()}
        b = checklist.blocker(stage_id, self.stage_status, items)
        if b is None or items.get(b.item) == "fail" or \
                self.stage_status.get(b.item) in ("failed", "died", "cancelled"):
            return b
        return None

    def stage_eta(self, stage_id: str, now: float) -> float | None:
        """Time left from the moving average of progress over the last ``eta_window_s``;
        None until it means something (enough done, long enough running, still moving)."""
        p = self.progress.get(stage_id)
        points = self._rate_points.get(stage_id)
        if not p or not points or len(points) < 3:
            return None
        done, total = p.get("done"), p.get("total")
        if not isinstance(done, (int, float)) or not isinstance(total, (int, float)) \
                or total <= 0 or done >= total or done / total < self._eta_min_fraction:
            return None
        started = self.stage_started_ts.get(stage_id, points[0][0])
        if points[-1][0] - started < self._eta_min_seconds:
            return None
        (t0, d0), (t1, d1) = points[0], points[-1]
        if t1 <= t0 or d1 <= d0:
            return None
        left = (total - done) / ((d1 - d0) / (t1 - t0)) - max(0.0, now - t1)
        return left if left > 0 else None  # "ETA 0s" while work remains says nothing

    def missed_targets(self) -> list[str]:
        return [k for k, c in self.checks.items() if c.get("status") == "fail"]

    def passed_stages(self) -> list[str]:
        return [s for s in checklist.STAGE_IDS if self.stage_status.get(s) == "ok"]


def _num(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "?"
