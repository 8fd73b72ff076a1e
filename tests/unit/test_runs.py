from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runs import Run, RunError, RunLock, RunLocked, atomic_write, open_run, validate_name


@pytest.mark.parametrize("name", ["web4-lora_r8.v2", "a", "x" * 64])
def test_good_run_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "has space", "../escape", "a/b", ".", "..",
                                  "ünï"])
def test_bad_run_names_are_refused(name: str) -> None:
    with pytest.raises(RunError, match="not allowed"):
        validate_name(name)


def test_open_missing_run_says_how_to_list(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="web4tui runs"):
        open_run("nope", tmp_path)


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, "old")
    atomic_write(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_atomic_write_failure_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, "old")

    class Boom(bytes):
        pass

    with pytest.raises(TypeError):
        atomic_write(target, 12345)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_stage_state_is_updated_per_stage(tmp_path: Path) -> None:
    run = Run(tmp_path / "r")
    run.root.mkdir()
    run.set_stage_state("sanity", "running")
    run.set_stage_state("sanity", "ok", duration_s=1.0)
    run.set_stage_state("dry_run", "skipped")
    state = json.loads(run.state_path.read_text())
    assert state["stages"]["sanity"]["status"] == "ok"
    assert state["stages"]["dry_run"]["status"] == "skipped"


def test_one_engine_per_run_across_processes(tmp_path: Path) -> None:
    run = Run(tmp_path / "r")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from engine.runs import Run, RunLock;"
         "l = RunLock(Run(Path(sys.argv[1]))); l.acquire(); print('locked', flush=True);"
         "time.sleep(30)", str(run.root)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout.readline().strip() == "locked"
        (run.root / "engine.pid").write_text(f"{holder.pid}\n")
        assert run.is_locked()
        with pytest.raises(RunLocked, match=str(holder.pid)):
            RunLock(run).acquire()
    finally:
        holder.kill()
        holder.wait()
    # the OS released the lock with the process: the run is free again
    assert not run.is_locked()
    with RunLock(run):
        assert os.path.exists(run.lock_path)
