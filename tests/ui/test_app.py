"""The app on a recorded run: the checklist tree reflects the events, keys work."""

from __future__ import annotations

from pathlib import Path

from engine import config
from engine.protocol import EventWriter
from web4tui.app import Web4App
from web4tui.runfolder import RunFolder


def _recorded_run(root: Path) -> RunFolder:
    run = root / "rec"
    run.mkdir(parents=True)
    (run / "config.toml").write_text(config.dumps(config.defaults()))
    w = EventWriter(run / "events.jsonl", "rec")
    w.emit("hello", engine_version="0", pid=1, backend="torch", device="cpu", python="3.11",
           argv=[])
    w.stage = "sanity"
    w.emit("stage_started", title="Sanity check", total=None)
    w.emit("check", item="sanity.valid_jsonl", status="pass", value="12 lines OK",
           target="no bad lines", detail={"files": 1})
    w.emit("check", item="sanity.totals", status="warn", value="12 records", target="",
           detail={"notes": ["few"]})
    w.emit("stage_finished", status="ok", duration_s=1.0, summary={})
    w.stage = "dry_run"
    w.emit("check", item="dry_run.no_nan", status="skip", value=None, target="",
           detail="not available")
    w.close()
    with open(run / "events.jsonl", "a") as fh:
        fh.write('{"broken json\n{"type": "from_the_future", "seq": 99, "ts": 1}\n')
    return RunFolder(run)


async def test_tree_shows_item_states_from_a_recorded_run(tmp_path: Path) -> None:
    app = Web4App(run=_recorded_run(tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.6)
        label = str(app.nodes["sanity.valid_jsonl"].label)
        assert label.startswith("✓") and "12 lines OK" in label
        assert str(app.nodes["sanity.totals"].label).startswith("!")
        assert str(app.nodes["dry_run.no_nan"].label).startswith("–")
        assert str(app.nodes["sanity"].label).startswith("✓")
        assert str(app.nodes["eval.mixed"].label).startswith("·")
        assert "torch/cpu" in app.sub_title
        await pilot.press("down")
        await pilot.pause(0.1)
        assert "Sanity check" in str(app.query_one("#detail").render())
        await pilot.press("down")
        await pilot.pause(0.1)
        detail = str(app.query_one("#detail").render())
        assert "Valid JSONL" in detail and "12 lines OK" in detail


async def test_stop_without_engine_says_so(tmp_path: Path) -> None:
    app = Web4App(run=_recorded_run(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await pilot.pause(0.1)
        assert any("no engine is running" in str(n.message) for n in app._notifications)
