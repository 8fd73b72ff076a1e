"""Drill into a result: everything the engine said about an item or stage, scrolled."""

from __future__ import annotations

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

    def __init__(self, title: str, lines: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="result") as scroll:
            scroll.border_title = self.title_text
            scroll.can_focus = True
            yield Static(Content.from_markup("\n".join(self.lines)), id="result-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#result").focus()

    def action_scroll(self, where: str) -> None:
        scroll = self.query_one("#result", VerticalScroll)
        scroll.scroll_home() if where == "home" else scroll.scroll_end()

    def text(self) -> str:
        """What the view says, as plain text (for tests and copying)."""
        return str(self.query_one("#result-text", Static).render())
