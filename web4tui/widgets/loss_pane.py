"""Training loss at a glance: current value, trend, tokens/s, raw and smoothed sparklines.

At 80x24 it is three lines; given more height the raw loss becomes a column plot.
"""

from __future__ import annotations

import bisect

from textual.content import Content
from textual.widget import Widget

from web4tui.charts import column_plot, fmt_rate, sparkline
from web4tui.run_state import RunState
from web4tui.settings import Settings


class LossPane(Widget):
    def __init__(self, settings: Settings, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.settings = settings
        self.state: RunState | None = None
        self.border_title = "Loss"

    def show(self, state: RunState) -> None:
        self.state = state
        title = f"Loss · {state.loss_stage}" if state.loss_stage else "Loss"
        if title != self.border_title:  # a title change repaints around the pane
            self.border_title = title
        self.refresh()

    def trend(self) -> str:
        """falling / flat / rising: the smoothed loss now against ``trend_window`` steps ago."""
        hist = self.state.loss if self.state else None
        if hist is None or len(hist.smooth) < 2:
            return ""
        back = hist.steps[-1] - self.settings.trend_window
        i = max(0, min(len(hist.steps) - 1, bisect.bisect_left(hist.steps, back)))
        then, now = hist.smooth[i], hist.smooth[-1]
        change = (now - then) / abs(then) if then else 0.0
        if abs(change) < self.settings.trend_flat_fraction:
            return "→ flat"
        return "↓ falling" if change < 0 else "↑ rising"

    def render(self) -> Content:
        state = self.state
        if state is None or not state.loss.raw:
            return Content.from_markup("[$text-muted]no loss yet (stages 2–4 report it)"
                                       "[/]")
        hist, m = state.loss, state.metric
        width, height = self.content_size.width, self.content_size.height
        head = (f"[b]{hist.raw[-1]:.3f}[/b] ema {hist.ema:.3f} {self.trend()} "
                f"{fmt_rate(m.get('tokens_per_s'))} tok/s step {state.metric_step}")
        if isinstance(m.get("lr"), (int, float)) and width >= 70:
            head += f"  lr {m['lr']:.1e}"
        lo = min(min(hist.raw), min(hist.smooth))
        hi = max(max(hist.raw), max(hist.smooth))
        w = max(1, width - 4)
        lines = [head]
        if height >= 6:
            rows, _, _ = column_plot(hist.raw, w, height - 2)
            lines += [f"[$text-muted]{'raw' if i == 0 else '':3}[/] [$primary]{r}[/]"
                      for i, r in enumerate(rows)]
        else:
            lines.append(f"[$text-muted]raw[/] [$primary]{sparkline(hist.raw, w, lo, hi)}[/]")
        lines.append(f"[$text-muted]ema[/] [$accent]{sparkline(hist.smooth, w, lo, hi)}[/]")
        return Content("\n").join(
            Content.from_markup(line).truncate(width, ellipsis=True) for line in lines)
