"""One setting for the next run, typed as on the command line: ``section.key=value``."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class EditSettingScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="setting.cancel")]

    def __init__(self, current: list[str], suggestion: str = "data.train=") -> None:
        super().__init__()
        self.current = current
        self.suggestion = suggestion

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Change a setting for the next run, as with --set on the command "
                         "line (a list setting takes one value too):", markup=False)
            # The suggestion stays: typing goes after "data.train=", not over it.
            yield Input(self.suggestion, placeholder="section.key=value, e.g. lora.r=16",
                        id="setting", select_on_focus=False)
            yield Static("already set: " + (", ".join(self.current) or "nothing")
                         + "\nEnter applies, esc cancels", id="setting-help", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(value if "=" in value and not value.endswith("=") else None)
