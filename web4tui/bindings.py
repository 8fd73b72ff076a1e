"""Every key binding as data: its id (remappable in settings.toml [keys]), default key,
footer label and palette title. The help screen and the command palette read this list, so
what a user can do is written down once.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Command:
    id: str
    key: str
    action: str
    label: str  # short, for the footer
    title: str  # "category: verb phrase", for the palette and help
    footer: bool = True


APP_COMMANDS = (
    Command("open_runs", "o", "open_runs", "Runs", "Runs: open another run"),
    Command("next_theme", "t", "next_theme", "Theme", "View: switch to the next theme", False),
    Command("help", "question_mark,f1", "help", "Help", "Help: show keys and glyphs"),
    Command("quit", "q", "quit", "Quit", "App: quit (the engine keeps running)"),
)
MAIN_COMMANDS = (
    Command("run_stage", "r", "run_stage", "Run", "Run: run the selected stage"),
    Command("run_all", "a", "run_all", "All", "Run: run all remaining stages"),
    Command("stop", "s", "stop", "Stop", "Run: stop the engine gracefully"),
    Command("resume", "c", "resume", "Resume", "Run: resume the interrupted stage and the rest",
            False),
    Command("rerun", "x", "rerun", "Re-run", "Run: re-run the selected stage", False),
    Command("edit_setting", "e", "edit_setting", "Set",
            "Run: change a setting for the next run (section.key=value)", False),
    Command("apply_advice", "g", "apply_advice", "Advice",
            "Run: apply the latest advice (its settings, on its stages)", False),
    Command("loss_plot", "p", "loss_plot", "Plot", "View: full loss plot", False),
    Command("toggle_loss", "1", "toggle_pane('loss')", "Loss", "Panes: show or hide loss", False),
    Command("toggle_memory", "2", "toggle_pane('memory')", "Memory",
            "Panes: show or hide memory", False),
    Command("toggle_samples", "3", "toggle_pane('samples')", "Samples",
            "Panes: show or hide samples", False),
    Command("toggle_advice", "4", "toggle_pane('advice')", "Advice",
            "Panes: show or hide advice", False),
    Command("toggle_log", "5", "toggle_pane('log')", "Log", "Panes: show or hide the log", False),
    Command("toggle_detail", "d", "toggle_pane('detail')", "Detail",
            "Panes: show or hide the item detail", False),
)
ALL_COMMANDS = APP_COMMANDS + MAIN_COMMANDS


def bindings(commands: tuple[Command, ...]) -> list[Binding]:
    return [Binding(c.key, c.action, c.label, show=c.footer, id=c.id, tooltip=c.title)
            for c in commands]


def key_for(command: Command, keymap: dict[str, str]) -> str:
    """The key a user presses for a command, after their remaps, as they would type it."""
    return typed(keymap.get(command.id, command.key))


_NAMES = {"question_mark": "?", "escape": "Esc", "enter": "Enter", "space": "Space",
          "up": "↑", "down": "↓", "left": "←", "right": "→", "home": "Home", "end": "End",
          "pageup": "PgUp", "pagedown": "PgDn", "delete": "Del", "tab": "Tab",
          "slash": "/", "plus": "+", "minus": "-"}


def typed(keys: str) -> str:
    """``question_mark,f1`` → ``? or F1``; ``ctrl+p`` → ``Ctrl+P``: keys as they are typed."""
    def one(key: str) -> str:
        *mods, base = key.split("+")
        name = _NAMES.get(base, base.upper() if len(base) > 1 and base[0] == "f"
                          and base[1:].isdigit() else base)
        if mods and len(name) == 1:
            name = name.upper()
        return "+".join([*(m.capitalize() for m in mods), name])
    return " or ".join(one(k.strip()) for k in keys.split(",") if k.strip())
