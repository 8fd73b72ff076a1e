"""Two header lines: run, backend/device, current stage, elapsed and ETA; then the data,
model and backend the next run will use.

Repainted only when its text changes (a plain refresh, no layout pass), so a running engine
costs one small repaint per second.
"""

from __future__ import annotations

import time

from textual.content import Content
from textual.widget import Widget

from web4tui.charts import fmt_duration
from web4tui.run_state import RunState


class RunHeader(Widget):
    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.text = ""

    def show(self, run_name: str | None, state: RunState, engine_alive: bool,
             next_run: str = "", overridden: bool = False) -> None:
        now = time.time()
        parts = ["web4tui", f"run {run_name}" if run_name else
                 "new run" if overridden else "new run (default config)"]
        if state.hello:
            parts.append(f"{state.hello.get('backend')}/{state.hello.get('device')}")
        stage = state.current_stage
        if state.engine_died:
            parts.append("engine died")
        elif stage and engine_alive:
            parts.append(f"▶ {stage}")
        elif engine_alive:
            parts.append("engine starting")
        else:
            parts.append("idle")
        if state.started_ts:
            end = now if engine_alive else (state.last_ts or state.started_ts)
            parts.append(f"elapsed {fmt_duration(end - state.started_ts)}")
        if stage and engine_alive:
            eta = state.stage_eta(stage, now)
            if eta is not None:
                parts.append(f"ETA {fmt_duration(eta)}")
        text = " │ ".join(parts) + (f"\n{next_run}" if next_run else "")
        if text != self.text:
            self.text = text
            self.refresh()

    def render(self) -> Content:
        first, sep, rest = self.text.partition("\n")
        if len(first) > self.content_size.width and first.startswith("web4tui │ "):
            first = first.removeprefix("web4tui │ ")  # the app's name gives way when short
        return Content(first + sep + rest)
