"""A run folder cannot be poisoned: deep nesting and payloads of the wrong type are skipped
like malformed lines, by the engine's reader, the app's batch reader and a new engine."""

from __future__ import annotations

import json
from pathlib import Path

from engine.protocol import EventReader, EventWriter, decode, read_events
from web4tui.follow import BatchReader

ENV = '"v": 1, "seq": %d, "ts": 1.0, "run": "r", "stage": "dry_run", '

#: Lines a hostile or broken writer could leave in events.jsonl; none of them is an event.
POISON = [
    "[" * 1000,
    '{"type": "log", ' + ENV % 90 + '"level": "info", "message": ' + "[" * 900 + "]" * 900 + "}",
    '{"type": "metric", ' + ENV % 91 + '"step": "x", "values": {"loss": 1.0}}',
    '{"type": "metric", ' + ENV % 92 + '"step": 3, "values": {"loss": "abc"}}',
    '{"type": "metric", ' + ENV % 93 + '"step": 3, "values": [1, 2]}',
    '{"type": "metric", ' + ENV % 94 + '"step": 3, "values": {"loss": NaN}}',
    '{"type": "metric", ' + ENV % 95 + '"step": true, "values": {}}',
    '{"type": "metric", ' + ENV % 96 + '"step": 3, "values": {"loss": 1e999}}',
    '{"type": "progress", ' + ENV % 97 + '"done": "x", "total": 5, "unit": "steps"}',
    '{"type": "memory", ' + ENV % 98 + '"rss_gb": "big"}',
    '{"type": "check", ' + ENV % 99 + '"item": "dry_run.no_nan", "status": "maybe"}',
    '{"type": "check", ' + ENV % 100 + '"item": 5, "status": "pass"}',
    '{"type": "stage_finished", ' + ENV % 101 + '"status": 3, "summary": {}}',
    '{"type": "stage_finished", ' + ENV % 102 + '"status": "ok", "summary": [1]}',
    '{"type": "hello", ' + ENV % 103 + '"pid": "x"}',
    '{"type": "log", ' + ENV % 104 + '"level": "info", "message": {"a": 1}}',
    '{"type": "error", ' + ENV % 105 + '"message": ["x"], "hint": null}',
    '{"type": "artifact", ' + ENV % 106 + '"kind": "adapter", "path": 5}',
    '{"type": "sample", ' + ENV % 107 + '"step": 1, "output": {"x": 1}}',
    '{"type": "log", "v": 1, "seq": "1", "ts": 1.0, "level": "info", "message": "m"}',
    '{"type": "log", "v": 1, "seq": 1, "ts": "x", "level": "info", "message": "m"}',
    '{"type": "log", "v": 1, "seq": 1, "ts": 1.0, "stage": 5, "level": "info", "message": "m"}',
]


def write_run(path: Path) -> list[int]:
    w = EventWriter(path, "r")
    w.stage = "dry_run"
    good = [w.emit("hello", stage=None, engine_version="1", pid=1, backend="torch",
                   device="cpu", python="3.11", argv=[]).seq]
    good.append(w.emit("metric", step=1, values={"loss": 2.5, "lr": 1e-4, "tokens_per_s": None})
                .seq)
    w.close()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n".join(POISON) + "\n")
    w = EventWriter(path, "r")  # a new engine on the poisoned folder continues the history
    good.append(w.emit("log", level="info", message="after").seq)
    w.close()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(POISON[0] + "\n")  # a poisoned last line: the next engine must still start
    return good


def test_every_reader_skips_poisoned_lines_and_keeps_the_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = write_run(path)
    assert good == [1, 2, 3]
    assert all(decode(line) is None for line in POISON)
    assert [e.seq for e in read_events(path)] == good
    batch = BatchReader(path)
    assert [e.seq for e in batch.poll()] == good and batch.skipped == len(POISON) + 1
    slow = EventReader(path)
    assert [e.seq for e in slow.poll()] == good and slow.skipped == len(POISON) + 1
    assert EventWriter(path, "r").seq == 3  # the highest seq survives a poisoned tail


def test_the_batch_reader_skips_exactly_what_decode_skips(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [json.dumps({"type": "metric", "v": 1, "seq": i, "ts": 1.0, "run": "r",
                         "stage": "dry_run", "step": i, "values": {"loss": 1.0}})
             for i in range(1, 6)]
    lines.insert(2, POISON[3])  # one bad payload inside an otherwise good chunk
    path.write_text("\n".join(lines) + "\n")
    assert [e.seq for e in BatchReader(path).poll()] == [1, 2, 3, 4, 5]


def test_a_poisoned_state_or_config_file_is_no_state_and_bad_input(tmp_path: Path) -> None:
    import pytest

    from engine import config
    from engine.runs import Run
    from web4tui.runfolder import RunFolder

    for text in ("[" * 5000, '{"stages": [1]}', '{"stages": {"dry_run": 5}}', "null"):
        (tmp_path / "state.json").write_text(text)
        assert RunFolder(tmp_path).status() in ("new", "skipped")
        assert isinstance(Run(tmp_path).read_state()["stages"], dict)
    (tmp_path / "config.toml").write_text("x = " + "[" * 5000)
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(tmp_path / "config.toml")


def test_fuzzed_event_lines_never_raise_and_both_readers_agree(tmp_path: Path) -> None:
    import random

    from engine.protocol import well_formed

    rng = random.Random(4)
    src = tmp_path / "src.jsonl"
    write_run(src)
    seeds = [line for line in src.read_bytes().split(b"\n") if line.startswith(b'{"v"')]
    odd = [None, True, "x", -1, 1e308, [], {}, [[[]]], "\x1b[2J", 2**70]
    lines = []
    for _ in range(5000):
        line = bytearray(rng.choice(seeds))
        how = rng.randrange(4)
        if how == 0:  # flip bytes
            for _ in range(rng.randrange(1, 4)):
                line[rng.randrange(len(line))] = rng.randrange(256)
        elif how == 1:  # cut
            line = line[: rng.randrange(len(line))]
        else:  # a field of another type, or nested deep
            obj = json.loads(bytes(line))
            key = rng.choice(sorted(obj))
            obj[key] = rng.choice(odd) if how == 2 else json.loads("[" * 70 + "]" * 70)
            line = bytearray(json.dumps(obj).encode())
        lines.append(bytes(line).replace(b"\n", b" "))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    decoded = [decode(line) for line in lines]  # never raises
    assert all(well_formed({**ev.payload, "type": ev.type, "seq": ev.seq, "ts": ev.ts,
                            "stage": ev.stage}) for ev in decoded if ev is not None)
    want = [ev.seq for ev in decoded if ev is not None]
    assert [e.seq for e in BatchReader(path).poll()] == want
    assert [e.seq for e in read_events(path)] == want
