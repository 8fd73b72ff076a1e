"""A full disk is an error, not a corruption: the failing checkpoint is removed, an error
event says what to do, state.json says failed, the event file ends on a whole line, and the
last complete checkpoint is intact (ENOSPC injected where a real full disk raises it)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import protocol
from engine.protocol import EventWriter, read_events
from engine.runs import Run
from engine.training import checkpoint as ckpt
from tests.support.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[2]

#: Runs one training stage in this process with the disk "filling up" at the second
#: checkpoint: its manifest write fails with ENOSPC, like any write on a full disk.
DRIVER = """
import errno, os, sys
from pathlib import Path
from engine import launch
from engine.training import checkpoint as ckpt
from engine.worker import work

real = ckpt.write_manifest
def full_disk(folder):
    if ".step-000004." in folder.name:
        (folder / "filler.bin").write_bytes(b"x" * 4096)  # what was written before it filled
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "manifest.json"))
    real(folder)
ckpt.write_manifest = full_disk
run, _cfg, lock = launch.prepare("full", None, sys.argv[1:], ["dry_run"])
lock.release()
sys.exit(work(run.root, ["dry_run"], detach_output=False, keep_going=True))
"""


def test_a_full_disk_at_a_checkpoint_fails_cleanly(tmp_path: Path) -> None:
    tiny = make_tiny_model(tmp_path / "tiny-llama")
    outputs = tmp_path / "outputs"
    sets = [f"model.id='{tiny}'", "dry_run.samples=8", "dry_run.max_steps=6",
            "dry_run.target_loss=0.01", "train.sample_every=1000", "train.checkpoint_every=2"]
    proc = subprocess.run([sys.executable, "-c", DRIVER, *sets], capture_output=True, text=True,
                          cwd=ROOT, timeout=900, env=dict(os.environ, WEB4TUI_OUTPUTS=str(outputs)))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run = outputs / "full"
    assert (run / "events.jsonl").read_bytes().endswith(b"\n")
    events = list(read_events(run / "events.jsonl"))
    errors = [e for e in events if e.type == "error"]
    assert errors and "No space left on device" in errors[-1].get("message"), errors
    assert "The disk is full" in errors[-1].get("hint")
    assert events[-1].type == "stage_finished" and events[-1].get("status") == "failed"
    assert json.loads((run / "state.json").read_text())["stages"]["dry_run"]["status"] == \
        "failed"
    root = run / "checkpoints" / "dry_run"
    assert sorted(p.name for p in root.iterdir()) == ["step-000002"]  # the half one is gone
    assert ckpt.verify(root / "step-000002") is None


def test_a_write_cut_short_leaves_the_event_file_on_a_whole_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    w = EventWriter(path, "r")
    w.emit("log", stage=None, level="info", message="before")
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))  # a short write, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(protocol.os, "write", half_then_full)
    with pytest.raises(OSError):
        w.emit("log", stage=None, level="info", message="x" * 500)
    monkeypatch.undo()
    assert path.read_bytes().endswith(b"\n")
    w.emit("log", stage=None, level="info", message="after")
    assert [(e.seq, e.get("message")) for e in read_events(path)] == [(1, "before"), (2, "after")]


def test_a_new_engine_repairs_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    w = EventWriter(path, "r")
    w.emit("log", stage=None, level="info", message="old")
    w.close()
    with open(path, "ab") as fh:
        fh.write(b'{"v": 1, "seq": 2, "ts": 1.0, "type": "lo')  # killed mid-write
    w = EventWriter(path, "r")
    hello = w.emit("hello", stage=None, engine_version="1", pid=1, backend="torch",
                   device="cpu", python="3.11", argv=[])
    assert hello.seq == 2
    assert [e.type for e in read_events(path)] == ["log", "hello"]  # hello not glued, not lost


def test_state_json_is_marked_failed_even_without_room_for_a_temp_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.runs as runs

    run = Run(tmp_path)
    run.set_stage_state("dry_run", "running")

    def no_room(path: object, obj: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runs, "atomic_write_json", no_room)
    run.set_stage_state("dry_run", "failed")
    assert run.read_state()["stages"]["dry_run"]["status"] == "failed"
