"""The app on a poisoned run folder: bogus events are skipped, the rest is shown, no crash."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from test_poisoned_events import POISON  # noqa: E402


async def test_the_app_replays_a_run_with_poisoned_events(runs, make_app) -> None:
    run = runs("training")
    lines = run.events_path.read_text().splitlines()
    poisoned = [line for pair in zip(lines, POISON * (len(lines) // len(POISON) + 1))
                for line in pair]
    run.events_path.write_text("\n".join(poisoned) + "\n")
    app = make_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert app.screen.follower.reader.skipped == len(lines)
        loss = str(app.screen.query_one("#loss").render())
        assert "step 300" in loss
        label = str(app.screen.query_one("ChecklistTree").node_for("mini").label)
        assert label.startswith("✗")
