"""The engine's log and errors, each error with its hint; only new lines are appended."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from web4tui.run_state import LogLine, RunState

LEVEL_VARS = {"error": "error", "warning": "warning", "debug": "text-muted"}


class LogPane(RichLog):
    def __init__(self, max_lines: int, **kwargs) -> None:  # noqa: ANN003
        # min_width: RichLog wraps at no less than this (78 by default, wider than the pane).
        super().__init__(max_lines=max_lines, wrap=True, markup=False, auto_scroll=True,
                         min_width=1, **kwargs)
        self.border_title = "Log"
        self._shown = 0  # RunState.log_total when we last drew

    def show(self, state: RunState) -> None:
        new = state.log_total - self._shown
        if new <= 0:
            return
        lines = list(state.log)
        if new >= len(lines):
            self.clear()
        else:
            lines = lines[-new:]
        for line in lines:
            self.write(self._text(line))
        self._shown = state.log_total

    def _text(self, line: LogLine) -> Text:
        color = self.app.theme_variables.get(LEVEL_VARS.get(line.level, ""), "")
        tag = f"[{line.stage}] " if line.stage else ""
        mark = "✗ " if line.level == "error" else "! " if line.level == "warning" else ""
        text = Text(f"{mark}{tag}{line.text}", style=color)
        if line.hint:
            text.append(f"\n  hint: {line.hint}",
                        style=self.app.theme_variables.get("accent", ""))
        return text
