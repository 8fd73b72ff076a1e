"""The main screen as a user sees it: 80x24 and 120x40, in the dark and the light theme.

Update after an intended change with ``pytest tests/ui/test_snapshots.py --snapshot-update``
and look at the report before committing.
"""

from __future__ import annotations

import pytest


async def _settle(pilot) -> None:  # noqa: ANN001
    await pilot.pause(0.4)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.parametrize("theme", ["web4-dark", "web4-light"])
def test_main_screen(snap_compare, runs, make_app, size, theme) -> None:
    app = make_app(runs("training"), theme=theme)
    assert snap_compare(app, terminal_size=size, run_before=_settle)


def test_item_detail_at_80x24(snap_compare, runs, make_app) -> None:
    app = make_app(runs("failing"), theme="web4-high-contrast")
    assert snap_compare(app, terminal_size=(80, 24), press=["down"], run_before=_settle)


def test_blocked_run_overview_at_80x24(snap_compare, runs, make_app) -> None:
    """Stage 1 failed, 2-8 blocked: every stage in view, the failing one open."""
    app = make_app(runs("gated"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settle)


def test_drill_into_valid_jsonl_at_80x24(snap_compare, runs, make_app) -> None:
    app = make_app(runs("gated"))
    assert snap_compare(app, terminal_size=(80, 24), press=["down", "enter"],
                        run_before=_settle)
