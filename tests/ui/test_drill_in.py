"""Enter on a result: everything the engine said about it, focusable and scrollable."""

from __future__ import annotations

from textual.containers import VerticalScroll

from web4tui.screens.main import MainScreen
from web4tui.screens.result import ResultScreen
from web4tui.widgets.checklist_tree import ChecklistTree


async def open_result(app, pilot, key: str) -> ResultScreen:  # noqa: ANN001
    tree = app.screen.query_one(ChecklistTree)
    tree.move_cursor(tree.node_for(key))
    await pilot.pause(0.1)
    await pilot.press("enter")
    await pilot.pause(0.2)
    assert isinstance(app.screen, ResultScreen)
    return app.screen


async def test_valid_jsonl_lists_every_bad_line_with_counts_per_reason(runs, make_app) -> None:
    import recorded

    app = make_app(runs("gated"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        view = await open_result(app, pilot, "sanity.valid_jsonl")
        text = view.text()
        assert "40 lines flagged, by reason" in text
        assert "invalid_json      20  not valid JSON" in text
        # Every bad line from the run folder, not just the five the event carried.
        for f, n, reason, message in recorded.BAD_LINES:
            if reason != "missing_field":
                assert f"{f}:{n}  {reason}\n      {message}" in text
        assert "{" not in text.split("every bad line")[1]  # for people: no raw JSON
        scroll = view.query_one("#result", VerticalScroll)
        assert scroll.has_focus and scroll.max_scroll_y > 0
        await pilot.press("end")
        await pilot.pause(0.1)
        assert scroll.scroll_y > 0
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert isinstance(app.screen, MainScreen)


async def test_loads_shows_the_per_bucket_token_table(runs, make_app) -> None:
    app = make_app(runs("gated"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        text = (await open_result(app, pilot, "sanity.loads")).text()
        assert "bucket       records   mean  p50  p95  max   total  trained" in text
        assert "style             30  450.0  440  610  700  13,500    5,200" in text
        assert "60 of 140 training lines did not load" in text


async def test_a_training_stage_shows_its_loss_and_memory(runs, make_app) -> None:
    app = make_app(runs("training"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        text = (await open_result(app, pilot, "mini")).text()
        assert "loss over 300 points" in text and "┤" in text
        assert "memory (peaks), budget 12.0 GB" in text and "device peak  10.90 GB" in text
        assert "✗ 10 tool prompts give valid JSON — 6/10" in text


async def test_a_blocked_stage_says_what_blocks_it(runs, make_app) -> None:
    app = make_app(runs("gated"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        tree = app.screen.query_one(ChecklistTree)
        assert str(tree.node_for("dry_run").label).startswith("⊘ 2. Dry run  blocked")
        advice = str(app.screen.query_one("#advice").render())
        assert "no advice: 3 targets missed, first “Valid JSONL” in 1. Sanity check" in advice
        assert "nothing has missed a target" not in advice
        text = (await open_result(app, pilot, "dry_run")).text()
        assert "2. Dry run — blocked" in text
        assert "needs 1. Sanity check, whose item “Valid JSONL” failed" in text
