"""PIDs that are checked: a stale engine.pid whose pid now belongs to another process is not
an engine — `runs` does not call it running and `stop` never signals it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import run_layout
from engine.runs import Run
from web4tui.runfolder import RunFolder


@pytest.fixture
def bystander() -> subprocess.Popen[bytes]:
    """An unrelated live process (what a reused pid points to)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def run_folder(tmp_path: Path, pid_text: str) -> RunFolder:
    root = tmp_path / "r1"
    root.mkdir()
    (root / "config.toml").write_text("")
    (root / "state.json").write_text(json.dumps({"stages": {"dry_run": {"status": "running"}}}))
    (root / "engine.pid").write_text(pid_text)
    return RunFolder(root)


def test_the_pid_file_records_the_start_time_of_its_process() -> None:
    pid, start = run_layout.pid_file_text().split()
    assert int(pid) > 0 and start == run_layout.process_start_time(int(pid))
    assert run_layout.live_pid(run_layout.pid_file_text()) == int(pid)


def test_a_reused_pid_is_not_the_engine_and_is_never_signalled(
        tmp_path: Path, bystander: subprocess.Popen[bytes]) -> None:
    # the engine that wrote this died; the system gave its pid to the bystander since
    run = run_folder(tmp_path, f"{bystander.pid} 1\n")
    assert run.pid() is None
    assert run.status() == "died"
    assert run.stop() is None
    time.sleep(0.2)
    assert bystander.poll() is None  # still alive: no SIGTERM reached it
    assert Run(run.root).engine_pid() is None


def test_the_live_engine_is_found_and_stopped(tmp_path: Path,
                                              bystander: subprocess.Popen[bytes]) -> None:
    run = run_folder(tmp_path, run_layout.pid_file_text(bystander.pid))
    assert run.pid() == bystander.pid and run.status() == "running"
    assert run.stop() == bystander.pid
    assert bystander.wait(timeout=10) == -15


@pytest.mark.parametrize("text", ["", "abc\n", "-5 x\n", "99999999999999 1\n", "0\n"])
def test_a_garbled_pid_file_means_no_engine(tmp_path: Path, text: str) -> None:
    assert run_folder(tmp_path, text).pid() is None
