"""One engine per run, decided once: the lock is taken before the config is written, so of two
simultaneous starts exactly one runs — with its own config — and the other exits 2 naming it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from engine import launch
from engine.runs import RunLocked

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_prepare_is_refused_before_it_writes_anything(outputs: Path) -> None:
    run, _cfg, lock = launch.prepare("same", None, ["lora.r=4"], ["advice"])
    try:
        before = run.config_path.read_bytes()
        with pytest.raises(RunLocked, match=rf"busy: engine pid {os.getpid()}"):
            launch.prepare("same", None, ["lora.r=16"], ["advice"])
        assert run.config_path.read_bytes() == before
    finally:
        lock.release()
    _run, cfg, lock = launch.prepare("same", None, ["lora.r=16"], ["advice"])  # free again
    lock.release()
    assert cfg["lora"]["r"] == 16


def start(name: str, r: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "engine", "start", "advice", "--run", name,
                             "--set", f"lora.r={r}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=os.environ)


def test_two_simultaneous_starts_one_runs_with_its_own_config(outputs: Path) -> None:
    for trial in range(3):
        name = f"race{trial}"
        procs = {r: start(name, r) for r in (4, 16)}
        results = {r: (p.wait(timeout=300), *p.communicate()) for r, p in procs.items()}
        winners = [r for r, (code, _out, _err) in results.items() if code == 0]
        assert len(winners) == 1, results
        won = winners[0]
        lost = results[20 - won]
        assert lost[0] == 2 and f"run '{name}' is busy" in lost[2], lost
        pid = json.loads(results[won][1].strip().splitlines()[-1])["pid"]
        # named by the pid of whoever holds it: the winning command, or by now its engine
        assert re.search(r"busy: engine pid \d+ is working on it", lost[2]), lost[2]
        cfg = tomllib.loads((outputs / name / "config.toml").read_text())
        assert cfg["lora"]["r"] == won, (trial, won, cfg["lora"]["r"])
        hello = [json.loads(line) for line in (outputs / name / "events.jsonl").read_text()
                 .splitlines() if '"hello"' in line]
        assert [h["pid"] for h in hello] == [pid]
    deadline = time.monotonic() + 120
    while any((outputs / f"race{t}" / "engine.pid").exists() for t in range(3)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
