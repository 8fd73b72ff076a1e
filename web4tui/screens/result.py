"""Drill into a result: everything the engine said about an item or stage, scrolled."""

from __future__ import annotations

from typing import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static


class ResultScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Back", id="result.back"),
                Binding("home", "scroll('home')", "Top", show=False, id="result.top"),
                Binding("end", "scroll('end')", "End", show=False, id="result.end")]

    def __init__(self, title: str, lines: Callable[[], list[str]],
                 changed: Callable[[], int] = lambda: 0, refresh_s: float = 1.0) -> None:
        """``lines`` draws the view; ``changed`` says when to draw it again (a running stage
        keeps reporting while its view is open)."""
        super().__init__()
        self.title_text = title
        self.make_lines = lines
        self.changed = changed
        self.refresh_s = refresh_s
        self._drawn = changed()

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="result") as scroll:
            scroll.border_title = self.title_text
            scroll.can_focus = True
            yield Static(self._content(), id="result-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#result").focus()
        self.set_interval(self.refresh_s, self._maybe_redraw)

    def _content(self) -> Content:
        return Content.from_markup("\n".join(self.make_lines()))

    def _maybe_redraw(self) -> None:
        now = self.changed()
        if now != self._drawn:
            self._drawn = now
            self.query_one("#result-text", Static).update(self._content())

    def action_scroll(self, where: str) -> None:
        scroll = self.query_one("#result", VerticalScroll)
        scroll.scroll_home() if where == "home" else scroll.scroll_end()

    def text(self) -> str:
        """What the view says, as plain text (for tests and copying)."""
        return str(self.query_one("#result-text", Static).render())
