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


def test_eval_shows_the_worst_answers_and_why_they_failed(tmp_path) -> None:  # noqa: ANN001
    from engine.protocol import Event
    from web4tui import drill
    from web4tui.run_state import RunState

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "eval_log.md").write_text(
        "# Evaluation\n\n## Worst examples per bucket\n\n### tool: 1 of 2 failed\n\n"
        "**tool-07** (`data/eval/tool.jsonl:7`, rule tool) — why: prose instead of a tool "
        "call\n\nAnswer:\n\n```\nSure, I will deploy it.\n```\n\n## Every failure\n\n- x\n")
    state = RunState()
    state.apply([Event(v=1, seq=1, ts=0.0, run="r", stage="eval", type="check", payload={
        "item": "eval.tool_json_valid", "status": "fail", "value": "50.0% (1/2)",
        "detail": {"metric": "tool.json_valid", "n": 2, "failures": [
            {"id": "tool-07", "reasons": ["prose instead of a tool call"]}]}})])
    item = "\n".join(drill.lines_for("eval.tool_json_valid", state, None, tmp_path))
    assert "1 answer that failed, and why" in item
    assert "✗ tool-07 — prose instead of a tool call" in item and ">= 95%" in item
    stage = "\n".join(drill.lines_for("eval", state, None, tmp_path))
    assert "worst answers per bucket" in stage
    assert "**tool-07** (`data/eval/tool.jsonl:7`, rule tool) — why: prose" in stage
    assert "Sure, I will deploy it." in stage and "Every failure" not in stage


async def test_the_view_follows_a_stage_that_is_still_reporting(runs, make_app,
                                                                 fake_engine) -> None:
    run = runs("gated")
    (run.root / "engine.pid").write_text(f"{fake_engine.pid}\n")  # an engine at work
    app = make_app(run, liveness_interval_s=0.1, poll_interval_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        view = await open_result(app, pilot, "sanity")
        assert "took 1s" in view.text()
        with open(run.events_path, "a") as fh:  # the stage is run again and reports anew
            fh.write('{"v": 1, "seq": 90, "ts": 1760000100, "run": "gated", "stage": "sanity",'
                     ' "type": "stage_started", "title": "Sanity check", "total": null}\n')
        for _ in range(40):
            await pilot.pause(0.1)
            if "1. Sanity check — running" in view.text():
                break
        assert "1. Sanity check — running" in view.text()


async def test_an_earlier_training_stage_shows_its_own_loss(runs, make_app) -> None:
    app = make_app(runs("training"))  # the screen's loss pane shows mini; dry_run is older
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        text = (await open_result(app, pilot, "dry_run")).text()
        assert "loss over 300 points" in text
        assert "first 3.888, last 0.441" in text  # dry_run's curve (mini's starts near 1.4)
        assert "memory (peaks), budget 12.0 GB" in text
