"""The web4tui app: settings, themes, keys and the palette; the screens do the rest.

The main screen follows one run folder (see :mod:`web4tui.screens.main`). The app never
owns an engine: quitting or losing SSH leaves the run going, and attaching later replays it.
"""

from __future__ import annotations

from functools import partial
from typing import Iterable

from textual.app import App, SystemCommand
from textual.screen import Screen

from web4tui import settings as user_settings
from web4tui.bindings import ALL_COMMANDS, APP_COMMANDS, bindings, key_for
from web4tui.next_run import NextRun
from web4tui.runfolder import RunFolder, outputs_dir
from web4tui.screens.confirm import QuitScreen
from web4tui.screens.help import HelpScreen
from web4tui.screens.main import MainScreen
from web4tui.screens.runs import RunsScreen
from web4tui.themes import load_themes


class Web4App(App[str | None]):
    """Returns, on exit, a line to print after the screen is restored (or None)."""

    CSS_PATH = "app.tcss"
    TITLE = "web4tui"
    BINDINGS = bindings(APP_COMMANDS)

    def __init__(self, run: RunFolder | None = None,
                 settings: user_settings.Settings | None = None,
                 next_run: NextRun | None = None) -> None:
        super().__init__()
        self.settings = settings or user_settings.load()
        self.first_run = run
        self.next_run = next_run or NextRun()
        self.own_themes = [t.name for t in load_themes()]
        for theme in load_themes():
            self.register_theme(theme)
        self.set_keymap(self.settings.keys)
        self.theme = (self.settings.theme if self.settings.theme in self.available_themes
                      else "web4-dark")

    def on_mount(self) -> None:
        self.push_screen(MainScreen(self.first_run, self.settings, self.next_run))
        for problem in self.settings.problems:
            self.notify(problem, title="settings", severity="warning", timeout=10)
        if self.settings.theme not in self.available_themes:
            self.notify(f"theme {self.settings.theme!r} is unknown; using web4-dark",
                        severity="warning")
        self.theme_changed_signal.subscribe(self, self._theme_changed)

    @property
    def main(self) -> MainScreen | None:
        screens = [s for s in self.screen_stack if isinstance(s, MainScreen)]
        return screens[-1] if screens else None

    # -- themes ---------------------------------------------------------------------------
    def _theme_changed(self, theme: object) -> None:
        """Any theme change (key, palette) is remembered in the settings file."""
        self.settings.theme = self.theme
        try:
            user_settings.save_value("theme", self.theme)
        except OSError as exc:
            self.notify(f"could not save the theme: {exc}", severity="warning")
        if self.main is not None:
            self.main.retheme()

    def action_next_theme(self) -> None:
        names = self.own_themes
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    # -- runs, help, palette --------------------------------------------------------------
    def action_open_runs(self) -> None:
        if isinstance(self.screen, RunsScreen):
            return
        self.push_screen(RunsScreen(outputs_dir(self.next_run.cfg)), self._open_run)

    def _open_run(self, run: RunFolder | None) -> None:
        if run is not None:
            # The app's overrides still apply; they are resolved again on that run's config.
            self.next_run = NextRun(self.next_run.config, list(self.next_run.sets))
            self.switch_screen(MainScreen(run, self.settings, self.next_run))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            # The keys of whatever has focus now (the tree's own included), then every command.
            focused = self.screen.focused
            pane = type(focused).__name__ if focused is not None else type(self.screen).__name__
            self.push_screen(HelpScreen(self.settings.keys, pane,
                                        list(self.screen.active_bindings.values())))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every web4tui action by name, then Textual's own (keys, screenshot…)."""
        main_actions = {c.id for c in ALL_COMMANDS} - {c.id for c in APP_COMMANDS}
        for command in ALL_COMMANDS:
            if command.id in main_actions and self.main is None:
                continue
            target = self.main if command.id in main_actions else self
            yield SystemCommand(command.title, f"key: {key_for(command, self.settings.keys)}",
                                partial(target.run_action, command.action))
        for command in super().get_system_commands(screen):
            if command.title != "Quit":  # ours says what happens to the engine
                yield command

    # -- quitting -------------------------------------------------------------------------
    async def action_quit(self) -> None:
        main = self.main
        run = main.run if main is not None else None
        if run is None or not run.pid():
            self.exit(None)
            return
        self.push_screen(QuitScreen(run.name), partial(self._quit_answer, run))

    def _quit_answer(self, run: RunFolder, answer: str | None) -> None:
        if answer == "stop":
            run.stop()
            self.exit(f"asked the engine on {run.name} to stop after its current step; "
                      f"`web4tui attach {run.name}` shows how it ended")
        elif answer == "leave":
            self.exit(f"the engine keeps working on {run.name}; "
                      f"`web4tui attach {run.name}` to come back")
