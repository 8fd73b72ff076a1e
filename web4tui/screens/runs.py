"""Every run in the outputs folder (run.outputs_dir), newest first: open (attach), stop or delete one."""

from __future__ import annotations

import shutil
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine import checklist
from web4tui.glyphs import glyph, word
from web4tui.run_summary import RunSummary, summarize
from web4tui.runfolder import RunFolder, list_runs, outputs_dir
from web4tui.screens.confirm import ConfirmScreen


class RunsScreen(Screen[RunFolder | None]):
    BINDINGS = [Binding("enter", "open", "Open", id="runs.open", priority=True),
                Binding("s", "stop", "Stop", id="runs.stop",
                        tooltip="Stop the selected run's engine after its current step"),
                Binding("delete,D", "delete", "Delete", id="runs.delete",
                        tooltip="Delete the selected run's folder (asks first)"),
                Binding("escape,q", "dismiss(None)", "Back", id="runs.back")]

    def __init__(self, root: Path | None = None) -> None:
        super().__init__()
        self.root = root or outputs_dir()  # the app's run.outputs_dir, when it was given one

    def compose(self) -> ComposeResult:
        yield Static(f"Runs in {self.root}/", id="runs-title", markup=False)
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("run", "status", "stages", "best eval", "updated")
        self.fill()
        table.focus()

    def fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.summaries: list[RunSummary] = [summarize(r) for r in list_runs(self.root)]
        for s in self.summaries:
            table.add_row(s.run.name, f"{glyph(s.status)} {word(s.status)}",
                          f"{s.passed}/{len(checklist.STAGE_IDS)}",
                          "–" if s.best_eval is None else f"{s.best_eval:.1f}", s.updated,
                          key=s.run.name)
        self.query_one("#runs-title", Static).update(
            f"Runs in {self.root}/ — Enter opens, s stops, Del deletes" if self.summaries
            else f"No runs yet in {self.root}/ — esc, then r runs stage 1")

    def selected(self) -> RunFolder | None:
        if not self.summaries:
            return None
        return self.summaries[self.query_one(DataTable).cursor_row].run

    def action_open(self) -> None:
        run = self.selected()
        if run is not None:
            self.dismiss(run)

    def action_stop(self) -> None:
        run = self.selected()
        if run is None:
            return
        if not run.pid():
            self.notify(f"run {run.name} has no engine running")
            return
        self.app.push_screen(
            ConfirmScreen(f"Stop the engine on {run.name}? It finishes the current step, "
                          "saves a checkpoint and ends the stage as cancelled.", yes="Stop"),
            lambda ok: ok and self._stop(run))

    def _stop(self, run: RunFolder) -> None:
        if run.stop() is not None:
            self.notify(f"asked the engine on {run.name} to stop after its current step")
        self.fill()

    def action_delete(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.pid():
            self.notify(f"run {run.name} is running — stop it (s) before deleting it",
                        severity="warning")
            return
        self.app.push_screen(
            ConfirmScreen(f"Delete run {run.name}? Its folder {run.root} — checkpoints, "
                          "adapter, GGUF and logs — is removed for good.", yes="Delete"),
            lambda ok: ok and self._delete(run))

    def _delete(self, run: RunFolder) -> None:
        main = getattr(self.app, "main", None)
        if main is not None and main.run is not None and main.run.root == run.root:
            self.notify("that run is open behind this screen; open another one first",
                        severity="warning")
            return
        shutil.rmtree(run.root, ignore_errors=True)
        self.notify(f"deleted run {run.name}")
        self.fill()
