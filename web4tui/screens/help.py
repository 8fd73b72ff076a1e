"""Keys (as remapped by the user), the glyph legend, and where settings live."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from web4tui.bindings import ALL_COMMANDS, key_for
from web4tui.glyphs import LEGEND
from web4tui.settings import settings_path


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close", id="help.close")]

    def __init__(self, keymap: dict[str, str]) -> None:
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        rows = [f"{key_for(c, self.keymap):>8}  {c.title:<48} {c.id}" for c in ALL_COMMANDS]
        text = "\n".join([
            "Keys (remap by id in [keys] of the settings file)", "", *rows,
            f"{'ctrl+p':>8}  Command palette: every action by name", "",
            "Glyphs", LEGEND, "",
            f"Settings: {settings_path()}",
            "Quitting never stops the engine; attach again with `web4tui attach RUN`.",
            "", "esc closes"])
        with VerticalScroll(id="dialog"):
            yield Static(text, markup=False)
