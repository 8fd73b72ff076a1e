"""The main screen on recorded runs: what a user sees and what the keys do."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from web4tui.screens.confirm import ConfirmScreen, QuitScreen
from web4tui.screens.main import MainScreen
from web4tui.widgets.advice_pane import AdvicePane
from web4tui.widgets.checklist_tree import ChecklistTree
from web4tui.widgets.log_pane import LogPane


def label(app, key: str) -> str:  # noqa: ANN001
    return str(app.screen.query_one(ChecklistTree).node_for(key).label)


def text(app, selector: str) -> str:  # noqa: ANN001
    return str(app.screen.query_one(selector).render())


def log_text(app) -> str:  # noqa: ANN001
    """The log as one line of words: long lines wrap in the pane."""
    return " ".join(" ".join(strip.text for strip in app.screen.query_one(LogPane).lines).split())


def notes(app) -> str:  # noqa: ANN001
    return "\n".join(str(n.message) for n in app._notifications)


async def test_passing_run_shows_glyphs_values_and_detail(runs, make_app) -> None:
    app = make_app(runs("passing"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        assert label(app, "sanity.valid_jsonl").startswith("✓ Valid JSONL  3,300 lines OK")
        assert label(app, "sanity.totals").startswith("!")
        assert label(app, "sanity").startswith("! 1. Sanity check  6✓ 1!")
        assert label(app, "eval.mixed").startswith("·")
        assert "Avg tokens < 2048" in label(app, "sanity.avg_tokens")  # target from config
        header = text(app, "#header")
        assert "run passing" in header and "torch/mps" in header and "idle" in header
        assert "elapsed 3s" in header
        await pilot.press("down")
        await pilot.pause(0.1)
        detail = text(app, "#detail")
        assert "Valid JSONL — pass" in detail and "measured 3,300 lines OK" in detail
        assert "seed: Valid JSONL" in detail


async def test_training_run_fills_loss_memory_samples_and_advice(runs, make_app) -> None:
    app = make_app(runs("training"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        loss = text(app, "#loss")
        assert "tok/s" in loss and "step 300" in loss and "raw" in loss and "ema" in loss
        assert app.screen.query_one("#loss").border_title == "Loss · mini"
        memory = text(app, "#memory")
        assert "10.5/12.0G" in memory and "pk 10.9" in memory
        samples = text(app, "#samples")
        assert "✓ tool" in samples and "✗ style" in samples and "✓ guardrail" in samples
        advice = app.screen.query_one(AdvicePane)
        assert advice.has_class("-alert") and "missed" in advice.border_title
        assert "add tool_neg examples" in text(app, "#advice")
        assert label(app, "mini.tool_json").startswith("✗")
        assert label(app, "mini").startswith("✗")


async def test_memory_gauge_changes_colour_near_the_budget(make_app) -> None:
    app = make_app(memory_warn_fraction=0.8, memory_danger_fraction=0.95)
    async with app.run_test(size=(80, 24)):
        pane = app.screen.query_one("#memory")
        assert pane.level(5, 12) == "success"
        assert pane.level(10, 12) == "warning"
        assert pane.level(11.9, 12) == "error"


async def test_failing_stage_shows_error_with_hint(runs, make_app) -> None:
    app = make_app(runs("failing"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert label(app, "sanity").startswith("✗")
        log = log_text(app)
        assert "✗ [sanity] Sanity check failed: 2 bad lines" in log
        assert "hint: Fix the listed lines" in log
        pane = app.screen.query_one(LogPane)  # wrapped to the pane, never cut on the right
        width = pane.scrollable_content_region.width
        assert max(strip.cell_length for strip in pane.lines) <= width


async def test_cancelled_run_resumes_from_the_cancelled_stage(runs, make_app, started) -> None:
    app = make_app(runs("cancelled"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert label(app, "dry_run").startswith("■")
        await pilot.press("c")  # resuming trains: it asks first
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause(0.3)
        assert started == [(["dry_run", "mini", "full", "eval", "export", "deploy", "advice"],
                            "cancelled")]
        assert "the engine did not start" in str([n.title for n in app._notifications])


async def test_malformed_lines_are_skipped_and_a_partial_line_waits(runs, make_app,
                                                                    fake_engine) -> None:
    run = runs("malformed")
    (run.root / "engine.pid").write_text(f"{fake_engine.pid}\n")  # it is mid-write
    app = make_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        main = app.screen
        assert label(app, "sanity.valid_jsonl").startswith("✓")
        assert main.follower.reader.skipped == 3
        assert label(app, "sanity").startswith("▶")  # the stage is still running
        with open(run.events_path, "a") as fh:  # the engine finishes its half-written line
            fh.write('nity", "type": "stage_finished", "status": "ok", "duration_s": 1, '
                     '"summary": {}}\n')
        await pilot.pause(0.3)
        assert label(app, "sanity").startswith("✓")


async def test_attach_replays_then_follows_incrementally(runs, make_app, fake_engine) -> None:
    run = runs("passing")
    (run.root / "engine.pid").write_text(f"{fake_engine.pid}\n")
    app = make_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        reader = app.screen.follower.reader
        assert reader.offset == run.events_path.stat().st_size
        reads: list[int] = []
        original = reader.poll
        reader.poll = lambda max_bytes=None: (reads.append(reader.offset), original(max_bytes))[1]
        await pilot.pause(0.3)
        assert reads == []  # nothing new: no read at all, only a stat
        with open(run.events_path, "a") as fh:
            fh.write('{"v": 1, "seq": 50, "ts": 1760000100, "run": "passing", "stage": null, '
                     '"type": "log", "level": "warning", "message": "disk almost full"}\n')
        await pilot.pause(0.3)
        assert reads and reads[0] > 0  # it read on from where it was
        assert "! disk almost full" in log_text(app)


async def test_a_finished_run_is_polled_slowly_and_still_follows(runs, make_app) -> None:
    run = runs("passing")
    app = make_app(run, liveness_interval_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert app.screen._fast_poll._active.is_set() is False  # no engine: no 10 Hz timer
        with open(run.events_path, "a") as fh:  # e.g. `web4tui run` started in another terminal
            fh.write('{"v": 1, "seq": 50, "ts": 1760000100, "run": "passing", "stage": null, '
                     '"type": "log", "level": "info", "message": "hello from elsewhere"}\n')
        await pilot.pause(0.5)
        assert "hello from elsewhere" in log_text(app)


async def test_dead_engine_is_noticed_with_the_end_of_engine_log(runs, make_app) -> None:
    app = make_app(runs("dead"), liveness_interval_s=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        assert label(app, "dry_run").startswith("☠")
        log = log_text(app)
        assert "the engine stopped without finishing its stage" in log
        assert "Killed: out of memory" in log
        assert "engine died" in text(app, "#header")
        assert "engine died" in notes(app)


async def test_stop_asks_first_then_sends_sigterm(runs, make_app, fake_engine) -> None:
    run = runs("passing")
    (run.root / "engine.pid").write_text(f"{fake_engine.pid}\n")
    app = make_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("s")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause(0.1)
        assert fake_engine.poll() is None
        await pilot.press("s", "y")
        assert fake_engine.wait(timeout=5) == -signal.SIGTERM


async def test_stop_without_engine_says_so(runs, make_app) -> None:
    app = make_app(runs("passing"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await pilot.pause(0.1)
        assert "no engine is running" in notes(app)


async def test_guards_in_proportion_to_cost(runs, make_app, started) -> None:
    app = make_app(runs("passing"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("r")  # stage 1 is cheap: re-running it starts at once
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
        assert started == [(["sanity"], "passing")]
        tree = app.screen.query_one(ChecklistTree)
        tree.move_cursor(tree.node_for("full"))
        await pilot.pause(0.1)
        await pilot.press("r")  # the full fine-tune is blocked: offers to run from stage 2
        await pilot.pause(0.2)
        question = str(app.screen.query_one("#question").render())
        assert "4. Full fine-tune is blocked: it needs 3. Mini fine-tune" in question
        assert "Run from 2. Dry run to 4. Full fine-tune?" in question
        assert "dry_run: up to" in question and "full: up to" in question
        await pilot.press("n")
        await pilot.pause(0.1)
        assert len(started) == 1
        tree.move_cursor(tree.node_for("dry_run"))
        await pilot.pause(0.1)
        await pilot.press("r")  # training asks first, with its size
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        assert "dry_run: up to" in str(app.screen.query_one("#question").render())
        await pilot.press("y")
        await pilot.pause(0.3)
        assert started[-1] == (["dry_run"], "passing")
        await pilot.press("a", "y")  # all remaining stages: asked, then started
        await pilot.pause(0.3)
        assert started[-1][0][0] == "dry_run" and "sanity" not in started[-1][0]


async def test_panes_toggle(runs, make_app) -> None:
    app = make_app(runs("training"))
    async with app.run_test(size=(80, 24)) as pilot:
        for key, pane in (("1", "#loss"), ("2", "#memory"), ("3", "#samples"), ("5", "#log"),
                          ("d", "#detail")):
            assert app.screen.query_one(pane).display
            await pilot.press(key)
            assert not app.screen.query_one(pane).display
            await pilot.press(key)
            assert app.screen.query_one(pane).display


async def test_quit_leaves_a_running_engine_alone(runs, make_app, fake_engine) -> None:
    run = runs("passing")
    (run.root / "engine.pid").write_text(f"{fake_engine.pid}\n")
    app = make_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause(0.1)
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("l")
        await pilot.pause(0.1)
    assert app.return_value and "keeps working on passing" in app.return_value
    time.sleep(0.2)
    assert fake_engine.poll() is None  # still alive


async def test_quit_without_engine_just_quits(runs, make_app) -> None:
    app = make_app(runs("passing"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause(0.1)
    assert app.return_value is None and not app.is_running


async def test_runs_screen_opens_another_run(runs, make_app) -> None:
    runs("failing")
    time.sleep(0.01)
    app = make_app(runs("training"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("o")
        await pilot.pause(0.2)
        table = app.screen.query_one("#runs")
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert [r[0] for r in rows] == ["training", "failing"]
        assert rows[0][2] == "2/8" and "failed" in rows[0][1]
        await pilot.press("down", "enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, MainScreen) and app.screen.run.name == "failing"
        assert label(app, "sanity").startswith("✗")


async def test_loss_plot_on_demand(runs, make_app) -> None:
    app = make_app(runs("training"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("p")
        await pilot.pause(0.2)
        plot = str(app.screen.query_one("#loss-plot").render())
        assert "300 points" in plot and "█" in plot
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_default_config_shows_targets_from_the_shipped_defaults(make_app) -> None:
    app = make_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert "new run (default config)" in text(app, "#header")
        assert "Avg tokens < 2048" in label(app, "sanity.avg_tokens")
        assert "LoRA r=8, alpha=16" in label(app, "full.config")


def test_help_and_palette_list_every_action(make_app) -> None:
    from web4tui.bindings import ALL_COMMANDS

    async def go() -> None:
        app = make_app(None)
        async with app.run_test(size=(100, 40)) as pilot:
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for command in ALL_COMMANDS:
                assert command.title in titles
            await pilot.press("question_mark")
            await pilot.pause(0.1)
            help_text = str(app.screen.query_one("Static").render())
            assert all(c.id in help_text for c in ALL_COMMANDS)

    import asyncio
    asyncio.run(go())
