"""Keys people expect, the runs screen's stop/delete, the focus cue and an honest ETA."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from engine.protocol import Event
from web4tui.run_state import RunState
from web4tui.screens.confirm import ConfirmScreen
from web4tui.screens.help import HelpScreen
from web4tui.widgets.checklist_tree import ChecklistTree


def progress(ts: float, done: float, total: float = 100) -> Event:
    return Event(v=1, seq=1, ts=ts, run="r", stage="full", type="progress",
                 payload={"done": done, "total": total, "unit": "steps", "eta_s": 0.0})


def test_eta_is_a_moving_average_hidden_until_it_means_something() -> None:
    state = RunState(eta_window_s=60, eta_min_fraction=0.05, eta_min_seconds=10)
    state.apply([Event(v=1, seq=1, ts=0.0, run="r", stage="full", type="stage_started",
                       payload={})])
    state.apply([progress(1.0, 1), progress(2.0, 2), progress(3.0, 3)])
    assert state.stage_eta("full", 3.0) is None  # 3% done, 3 s in: no ETA yet
    state.apply([progress(t, t) for t in range(4, 31)])  # 1 step/s for 30 s
    assert abs(state.stage_eta("full", 30.0) - 70.0) < 1e-6  # 70 steps left at 1 step/s
    assert abs(state.stage_eta("full", 40.0) - 60.0) < 1e-6  # counting down between events
    assert state.stage_eta("full", 200.0) is None  # never "ETA 0s" while work remains


async def test_help_lists_the_focused_tree_keys_and_the_palette_shows_typed_keys(
        make_app) -> None:
    app = make_app(None)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause(0.2)
        hints = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert hints["Help: show keys and glyphs"] == "key: ? or F1"
        assert hints["Run: run the selected stage"] == "key: r"
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("Static").render())
        assert text.startswith("Keys of the checklist")
        assert "Enter  Open everything the engine said about the item or stage" in text
        assert "Space  Open or close the stage" in text
        assert "question_mark" not in text


async def test_the_focused_pane_has_a_visible_border(runs, make_app) -> None:
    app = make_app(runs("passing"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        tree, log = app.screen.query_one(ChecklistTree), app.screen.query_one("#log")
        assert tree.has_focus and tree.styles.border_left[0] == "outer"
        assert log.styles.border_left[0] in ("", "none")
        await pilot.press("tab")
        await pilot.pause(0.1)
        assert tree.styles.border_left[0] == "blank"
        assert log.has_focus and log.styles.border_left[0] == "outer"


async def test_runs_screen_stops_and_deletes_with_confirmation(runs, make_app,
                                                               fake_engine) -> None:
    live = runs("cancelled")
    (live.root / "engine.pid").write_text(f"{fake_engine.pid}\n")
    runs("failing")
    app = make_app(runs("passing"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("o")
        await pilot.pause(0.2)
        table = app.screen.query_one("#runs")
        names = [table.get_row_at(i)[0] for i in range(table.row_count)]
        table.move_cursor(row=names.index("failing"))
        await pilot.press("delete")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause(0.1)
        assert (Path(live.root.parent) / "failing").exists()
        await pilot.press("delete", "y")
        await pilot.pause(0.2)
        assert not (Path(live.root.parent) / "failing").exists()
        names = [table.get_row_at(i)[0] for i in range(table.row_count)]
        assert "failing" not in names
        table.move_cursor(row=names.index("cancelled"))
        await pilot.press("s", "y")
        assert fake_engine.wait(timeout=5) == -signal.SIGTERM


def test_an_outputs_folder_that_is_a_file_is_bad_usage_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "outputs").write_text("not a folder")
    proc = subprocess.run([sys.executable, "-m", "web4tui", "run", "sanity"],
                          capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ,
                               "WEB4TUI_OUTPUTS": str(tmp_path / "outputs")})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "point run.outputs_dir (or WEB4TUI_OUTPUTS) at a folder" in proc.stderr
