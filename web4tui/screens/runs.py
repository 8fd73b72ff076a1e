"""Every run in outputs/, newest first; Enter opens one (live or finished)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine import checklist
from web4tui.glyphs import glyph, word
from web4tui.run_summary import RunSummary, summarize
from web4tui.runfolder import RunFolder, list_runs, outputs_dir

class RunsScreen(Screen[RunFolder | None]):
    BINDINGS = [Binding("enter", "open", "Open", id="runs.open", priority=True),
                Binding("escape,q", "dismiss(None)", "Back", id="runs.back")]

    def compose(self) -> ComposeResult:
        yield Static(f"Runs in {outputs_dir()}/", id="runs-title", markup=False)
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("run", "status", "stages", "best eval", "updated")
        self.summaries: list[RunSummary] = [summarize(r) for r in list_runs()]
        for s in self.summaries:
            table.add_row(s.run.name, f"{glyph(s.status)} {word(s.status)}",
                          f"{s.passed}/{len(checklist.STAGE_IDS)}",
                          "–" if s.best_eval is None else f"{s.best_eval:.1f}", s.updated,
                          key=s.run.name)
        if not self.summaries:
            self.query_one("#runs-title", Static).update(
                f"No runs yet in {outputs_dir()}/ — esc, then r runs stage 1")
        table.focus()

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if self.summaries:
            self.dismiss(self.summaries[table.cursor_row].run)
