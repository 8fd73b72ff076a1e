"""A stage without an implementation reports every item as skipped, never as passed."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from engine import checklist, config
from engine.worker import run_one


def test_unavailable_stage_skips_all_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "engine.stages.export", None)  # no module runs it
    events: list[dict[str, Any]] = []
    status = run_one("export", config.defaults(), lambda type, **p: events.append(
        {"type": type, **p}), lambda: False, None)
    assert status == "skipped"
    checks = [e for e in events if e["type"] == "check"]
    assert {c["item"] for c in checks} == {i.id for i in checklist.stage("export").items}
    assert all(c["status"] == "skip" and "not available" in c["detail"] for c in checks)
    assert events[0]["type"] == "stage_started" and events[-1]["type"] == "stage_finished"
    assert events[-1]["status"] == "skipped"


def test_a_crashing_stage_becomes_an_error_event_and_a_failed_stage(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.worker as worker

    def boom(ctx: Any) -> str:
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(worker, "runner", lambda stage_id: boom)
    events: list[dict[str, Any]] = []
    status = run_one("dry_run", config.defaults(), lambda type, **p: events.append(
        {"type": type, **p}), lambda: False, None)
    assert status == "failed"
    err = [e for e in events if e["type"] == "error"][0]
    assert "device-side assert" in err["message"] and err["hint"]
