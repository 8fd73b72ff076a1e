"""Memory against the budget: the training process, the device and the system, with peaks.

A gauge changes colour as it nears the budget (``memory_warn_fraction`` and
``memory_danger_fraction`` in the settings).
"""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from web4tui.run_state import RunState
from web4tui.settings import Settings


class MemoryPane(Widget):
    def __init__(self, settings: Settings, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.settings = settings
        self.state: RunState | None = None
        self.border_title = "Memory"

    def show(self, state: RunState) -> None:
        self.state = state
        self.refresh()

    def level(self, used: float, limit: float) -> str:
        """The theme colour for a gauge: success, warning or error."""
        frac = used / limit if limit else 0.0
        if frac >= self.settings.memory_danger_fraction:
            return "error"
        return "warning" if frac >= self.settings.memory_warn_fraction else "success"

    def render(self) -> Content:
        mem = self.state.memory if self.state else {}
        if not mem:
            return Content.from_markup("[$text-muted]no memory readings yet (training "
                                       "stages)[/]")
        peaks = self.state.peaks
        budget = _f(mem.get("budget_gb"))
        rows = [("process", _f(mem.get("rss_gb")), budget, peaks.get("rss_gb")),
                ("device", _f(mem.get("device_gb")), budget,
                 max(peaks.get("device_peak_gb", 0.0), peaks.get("device_gb", 0.0)) or None),
                ("system", _f(mem.get("system_used_gb")), _f(mem.get("system_total_gb")),
                 peaks.get("system_used_gb"))]
        width = self.content_size.width
        texts = [f" {u:.1f}/{lim:.1f}G" + (f" pk {pk:.1f}" if pk else "")
                 if u is not None and lim else "" for _, u, lim, pk in rows]
        bar_w = max(4, width - 8 - max(map(len, texts)))  # one bar width: rows line up
        lines = []
        for (name, used, limit, peak), text in zip(rows, texts):
            if not text:
                lines.append(f"{name:<7} [$text-muted]–[/]")
                continue
            fill = min(bar_w, round(used / limit * bar_w))
            mark = min(bar_w - 1, round(peak / limit * bar_w)) if peak else None
            cells = ["█"] * fill + ["░"] * (bar_w - fill)
            if mark is not None and mark >= fill:
                cells[mark] = "▏"  # the peak, where the bar no longer reaches
            lines.append(f"{name:<7} [${self.level(used, limit)}]{''.join(cells)}[/]{text}")
        return Content.from_markup("\n".join(lines))


def _f(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
