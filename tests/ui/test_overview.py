"""The whole checklist at 80x24: a row per stage, the stage in focus open, labels ellipsised."""

from __future__ import annotations

import pytest

from engine import checklist
from web4tui.widgets.checklist_tree import ChecklistTree


def visible_rows(tree: ChecklistTree) -> list[str]:
    top = int(tree.scroll_offset.y)
    lines = tree._tree_lines[top: top + tree.scrollable_content_region.height]
    return [str(line.node.data) for line in lines]


@pytest.mark.parametrize("theme", ["web4-dark", "web4-light", "web4-high-contrast"])
@pytest.mark.parametrize("run", ["training", "passing", "failing"])
async def test_all_eight_stages_are_visible_at_80x24(runs, make_app, theme, run) -> None:
    app = make_app(runs(run), theme=theme)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        tree = app.screen.query_one(ChecklistTree)
        rows = visible_rows(tree)
        assert [r for r in rows if r in checklist.STAGE_IDS] == list(checklist.STAGE_IDS)
        open_stages = [s for s in checklist.STAGE_IDS if tree.node_for(s).is_expanded]
        assert len(open_stages) == 1


async def test_the_first_failing_stage_is_open_until_the_user_moves(runs, make_app) -> None:
    app = make_app(runs("training"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        tree = app.screen.query_one(ChecklistTree)
        assert tree.selected_key() == "mini" and tree.node_for("mini").is_expanded
        label = str(tree.node_for("mini").label)
        assert label.startswith("✗ 3. Mini fine-tune") and "1✓ 1! 1✗" in label
        for _ in range(7):  # down through mini's six items onto the next stage
            await pilot.press("down")
        await pilot.pause(0.1)
        assert tree.selected_key() == "full" and tree.node_for("full").is_expanded
        assert not tree.node_for("mini").is_expanded
        assert [r for r in visible_rows(tree) if r in checklist.STAGE_IDS] == \
            list(checklist.STAGE_IDS)


async def test_long_labels_end_in_an_ellipsis_within_the_pane(runs, make_app) -> None:
    app = make_app(runs("training"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        tree = app.screen.query_one(ChecklistTree)
        width = tree.scrollable_content_region.width - 2
        label = tree.node_for("mini.tool_json").label
        assert label.cell_len <= width and str(label).endswith("…")
        assert str(label).startswith("✗ 10 tool prompts give valid")
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.3)
        assert str(tree.node_for("mini.tool_json").label) == \
            "✗ 10 tool prompts give valid JSON  6/10"


async def test_stages_after_a_failure_show_as_blocked_before_they_are_asked(runs,
                                                                           make_app) -> None:
    app = make_app(runs("training"))  # mini failed; nothing after it was started
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        tree = app.screen.query_one(ChecklistTree)
        for stage in ("full", "eval", "export", "deploy"):
            assert str(tree.node_for(stage).label).startswith("⊘"), stage
        assert str(tree.node_for("advice").label).startswith("·")  # it needs only stage 1
        tree.move_cursor(tree.node_for("full"))
        await pilot.pause(0.1)
        detail = str(app.screen.query_one("#detail").render())
        assert "4. Full fine-tune — blocked" in detail
        assert "needs 3. Mini fine-tune, whose item “10 tool prompts give valid JSON” failed" \
            in " ".join(detail.split())


async def test_every_stage_opened_still_leaves_all_eight_in_view(runs, make_app) -> None:
    app = make_app(runs("passing"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        tree = app.screen.query_one(ChecklistTree)
        for stage in checklist.STAGE_IDS:
            tree.move_cursor(tree.node_for(stage))
            await pilot.pause(0.05)
            last = checklist.stage(stage).items[-1].id
            tree.move_cursor(tree.node_for(last))  # the cursor at the stage's last item
            await pilot.pause(0.05)
            rows = visible_rows(tree)
            assert [r for r in rows if r in checklist.STAGE_IDS] == list(checklist.STAGE_IDS), \
                (stage, rows)
