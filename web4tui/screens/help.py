"""Keys (as remapped by the user): the focused pane's own first, then every command; the
glyph legend, and where settings live."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from web4tui.bindings import ALL_COMMANDS, key_for, typed
from web4tui.glyphs import LEGEND
from web4tui.settings import settings_path

#: What the checklist tree's own keys do, in the product's words (Textual's are generic).
TREE_KEYS = {"enter": "Open everything the engine said about the item or stage",
             "space": "Open or close the stage", "up": "Previous line", "down": "Next line",
             "shift+up": "Previous stage or item at the same level",
             "shift+down": "Next stage or item at the same level",
             "shift+left": "Up to the stage", "home": "First line", "end": "Last line",
             "pageup": "Page up", "pagedown": "Page down"}
PANE_NAMES = {"ChecklistTree": "the checklist", "VerticalScroll": "the result view",
              "DataTable": "the runs list"}


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close", id="help.close")]

    def __init__(self, keymap: dict[str, str], pane: str = "",
                 active: list[Any] | None = None) -> None:
        super().__init__()
        self.keymap = keymap
        self.pane = pane
        self.active = active or []

    def compose(self) -> ComposeResult:
        command_actions = {c.action for c in ALL_COMMANDS}
        own = []
        seen: set[str] = set()
        for ab in self.active:  # ActiveBinding: the focused widget's first, then its parents'
            b = ab.binding
            if b.action in command_actions or b.key in seen or b.action == "help":
                continue
            seen.add(b.key)
            what = TREE_KEYS.get(b.key) if self.pane == "ChecklistTree" else None
            what = what or b.tooltip or b.description or b.action
            own.append(f"{typed(b.key):>10}  {what}")
        rows = [f"{key_for(c, self.keymap):>10}  {c.title:<58} {c.id}" for c in ALL_COMMANDS]
        where = PANE_NAMES.get(self.pane, self.pane)
        text = "\n".join([
            f"Keys of {where}" if own else "", *own, "" if own else "",
            "Commands (remap by id in [keys] of the settings file)", "", *rows,
            f"{'Ctrl+P':>10}  Command palette: every action by name", "",
            "Glyphs", LEGEND, "",
            f"Settings: {settings_path()}",
            "Quitting never stops the engine; attach again with `web4tui attach RUN`.",
            "", "Esc closes"]).lstrip("\n")
        with VerticalScroll(id="dialog"):
            yield Static(text, markup=False)
