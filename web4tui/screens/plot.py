"""The full loss plot on demand: raw loss as columns over the whole screen, with its scale."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from web4tui.charts import column_plot, sparkline
from web4tui.run_state import RunState


class LossPlot(Widget):
    def __init__(self, state: RunState) -> None:
        super().__init__(id="loss-plot")
        self.state = state
        self.border_title = "Loss (raw columns, smoothed line below)"

    def render(self) -> Content:
        hist = self.state.loss
        if not hist.raw:
            return Content("no training loss yet")
        width, height = self.content_size.width - 8, self.content_size.height - 3
        rows, lo, hi = column_plot(hist.raw, max(1, width), max(1, height))
        lines = []
        for i, row in enumerate(rows):
            label = f"{hi:7.3f}" if i == 0 else f"{lo:7.3f}" if i == len(rows) - 1 else ""
            lines.append(f"{label:>7} [$primary]{row}[/]")
        lines.append(f"{'ema':>7} [$accent]{sparkline(hist.smooth, max(1, width), lo, hi)}[/]")
        lines.append(f"{'':8}step {hist.steps[0]} … {hist.steps[-1]}   "
                     f"{len(hist.raw)} points (1 in {hist.stride})   last {hist.raw[-1]:.4f}")
        return Content.from_markup("\n".join(lines))


class PlotScreen(Screen[None]):
    BINDINGS = [Binding("escape,q,p", "dismiss", "Back", id="plot.back")]

    def __init__(self, state: RunState, refresh_s: float) -> None:
        super().__init__()
        self.state = state
        self.refresh_s = refresh_s
        self._drawn = -1

    def compose(self) -> ComposeResult:
        yield LossPlot(self.state)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self.refresh_s, self._maybe_redraw)

    def _maybe_redraw(self) -> None:
        if self.state.loss.seen != self._drawn:  # only when new points arrived
            self._drawn = self.state.loss.seen
            self.query_one(LossPlot).refresh()
