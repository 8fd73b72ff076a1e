"""One key turns the newest advice into a run of its stages with its settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import config
from engine.protocol import EventWriter
from web4tui.runfolder import RunFolder
from web4tui.screens.confirm import ConfirmScreen


def _advised_run(outputs: Path) -> RunFolder:
    run = outputs / "advised"
    run.mkdir()
    (run / "config.toml").write_text(config.dumps(config.defaults()))
    w = EventWriter(run / "events.jsonl", "advised")
    w.emit("hello", engine_version="0", pid=1, backend="torch", device="cpu", python="3.11",
           argv=[])
    w.stage = "advice"
    w.emit("advice", rule="loss_stagnates", symptom="loss stagnates",
           action="lower the learning rate", evidence={"mini.final_loss": 1.9},
           change={"stages": ["mini"], "set": {"train.learning_rate": 0.0001}})
    w.close()
    return RunFolder(run)


async def test_apply_advice_asks_then_starts_its_stages_with_its_settings(
        outputs: Path, make_app, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], str | None, list[str]]] = []

    def fake_start(stages, *, run=None, config=None, sets=()):  # noqa: ANN001, ANN202
        from web4tui.engine_client import EngineError
        calls.append((list(stages), run, list(sets)))
        raise EngineError("test: not started", 1)

    monkeypatch.setattr("web4tui.engine_client.start", fake_start)
    app = make_app(_advised_run(outputs))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("g")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause(0.3)
    assert calls == [(["mini"], "advised", ["train.learning_rate=0.0001"])]


async def test_apply_advice_without_advice_says_so(runs, make_app) -> None:
    app = make_app(runs("passing"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("g")
        await pilot.pause(0.1)
        assert any("no advice" in str(n.message) for n in app._notifications)
