from __future__ import annotations

import json
from pathlib import Path

from engine import protocol
from engine.protocol import Event, EventReader, EventWriter, decode, encode


def test_encode_decode_round_trip() -> None:
    ev = Event(type="metric", seq=7, ts=1.5, run="r1", stage="dry_run",
               payload={"step": 3, "values": {"loss": 2.5, "lr": 1e-4}})
    line = encode(ev)
    assert line.endswith("\n") and line.count("\n") == 1
    back = decode(line)
    assert back == ev
    assert json.loads(line)["v"] == protocol.VERSION


def test_decode_tolerates_garbage_and_unknown_types() -> None:
    assert decode("") is None
    assert decode("not json") is None
    assert decode("[1, 2]") is None
    assert decode('{"type": "from_the_future", "seq": 1, "ts": 1}') is None
    assert decode('{"type": "log", "seq": "one", "ts": 1}') is None
    ok = decode(b'{"type": "log", "seq": 1, "ts": 2, "run": "x", "stage": null, "level": "info",'
                b' "message": "hi", "new_field": 3}')
    assert ok is not None and ok.get("message") == "hi" and ok.get("new_field") == 3


def test_writer_numbers_events_and_continues_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    w = EventWriter(path, "r")
    w.emit("log", level="info", message="a")
    w.stage = "sanity"
    w.emit("check", item="sanity.fields", status="pass", value=1, target=None, detail=None)
    w.close()
    w2 = EventWriter(path, "r")
    w2.emit("log", level="info", message="b")
    w2.close()
    events = list(protocol.read_events(path))
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[1].stage == "sanity" and events[2].stage is None


def test_reader_is_incremental_and_holds_back_a_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    reader = EventReader(path)
    assert reader.poll() == []  # no file yet
    first = encode(Event("log", 1, 1.0, "r", None, {"level": "info", "message": "one"}))
    second = encode(Event("log", 2, 2.0, "r", None, {"level": "info", "message": "two"}))
    path.write_text(first + "garbage line\n" + second[:10])
    got = reader.poll()
    assert [e.get("message") for e in got] == ["one"]
    assert reader.skipped == 1
    with open(path, "a") as fh:
        fh.write(second[10:])
    got = reader.poll()
    assert [e.get("message") for e in got] == ["two"]
    assert reader.poll() == []
    assert reader.offset == path.stat().st_size


def test_writer_refuses_unknown_types(tmp_path: Path) -> None:
    w = EventWriter(tmp_path / "e.jsonl", "r")
    try:
        import pytest
        with pytest.raises(ValueError):
            w.emit("bogus")
    finally:
        w.close()


def test_every_event_type_documents_its_fields() -> None:
    for name in ("hello", "stage_started", "progress", "metric", "memory", "check", "sample",
                 "advice", "artifact", "log", "stage_finished", "error"):
        assert name in protocol.EVENT_FIELDS


def test_writer_holds_payloads_to_their_declared_fields(tmp_path: Path, monkeypatch,
                                                         caplog) -> None:
    import pytest

    monkeypatch.setenv(protocol.STRICT_ENV, "1")  # as in the test suite
    w = EventWriter(tmp_path / "e.jsonl", "r")
    try:
        w.emit("check", item="eval.tool_json_valid", status="pass", value="96.0% (48/50)",
               measured=0.96, target="≥ 95%", detail=None)
        with pytest.raises(ValueError, match="check.score is not a declared field"):
            w.emit("check", item="x", status="pass", score=1)
        with pytest.raises(ValueError, match="check.measured = '96%' has the wrong type"):
            w.emit("check", item="x", status="pass", measured="96%")
        assert len(list(protocol.read_events(tmp_path / "e.jsonl"))) == 1  # nothing written
        monkeypatch.delenv(protocol.STRICT_ENV, raising=False)  # a user's run: warn, go on
        with caplog.at_level("WARNING"):
            w.emit("progress", done=1, total=2, unit="steps", eta_s=None, speed=3.0)
            w.emit("progress", done=2, total=2, unit="steps", eta_s=None, speed=3.0)
        assert caplog.text.count("progress.speed is not a declared field") == 1
        written = list(protocol.read_events(tmp_path / "e.jsonl"))
        assert [e.get("speed") for e in written][1:] == [3.0, 3.0]
    finally:
        w.close()


def test_the_fields_the_engine_writes_are_declared() -> None:
    f = protocol.EVENT_FIELDS
    assert {"backend_reason", "precision", "precision_reason"} <= set(f["hello"])
    assert "device_cache_gb" in f["memory"] and "message" in f["progress"]
    assert "change" in f["advice"] and "measured" in f["check"]
