"""The detached engine through `web4tui run`: run folder, events, state, lock, graceful stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from engine.protocol import read_events

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "tests" / "fixtures" / "good"
DATA = [f"data.train=['{GOOD}']", "data.eval=[]", "sanity.expected_records_min=0",
        "sanity.expected_tokens_min=0"]


def web4tui(*args: str, sets: list[str] = DATA, timeout: float = 600
            ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "web4tui", *args]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env=os.environ)


def test_sanity_run_writes_the_run_folder(outputs: Path) -> None:
    proc = web4tui("run", "sanity", "--run", "t1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all stages passed" in proc.stdout
    assert "[sanity] ✓ pass Valid JSONL" in proc.stdout
    run = outputs / "t1"
    cfg = tomllib.loads((run / "config.toml").read_text())
    assert cfg["data"]["train"] == [str(GOOD)] and cfg["lora"]["r"] == 8
    events = list(read_events(run / "events.jsonl"))
    types = [e.type for e in events]
    assert types[0] == "hello" and types[1] == "stage_started" and types[-1] == "stage_finished"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].get("summary")["unproved"] == []  # the engine's verdict on skipped items
    hello = events[0]  # the run header names the number format and why it was chosen
    assert hello.get("precision") in ("bf16", "fp16", "fp32")
    assert hello.get("precision_reason") and hello.get("precision_reason") in \
        hello.get("backend_reason")
    checks = {e.get("item"): e.get("status") for e in events if e.type == "check"}
    assert set(checks) == {"sanity.valid_jsonl", "sanity.fields", "sanity.fits_seq_len",
                           "sanity.avg_tokens",
                           "sanity.loads", "sanity.roundtrip", "sanity.samples", "sanity.totals"}
    state = json.loads((run / "state.json").read_text())
    assert state["stages"]["sanity"]["status"] == "ok"
    assert not (run / "engine.pid").exists()  # removed when the engine ended
    assert (run / "engine.log").read_text()
    assert (run / "sanity" / "problems.jsonl").exists()


def test_export_without_an_adapter_is_blocked_and_says_what_is_missing(outputs: Path) -> None:
    proc = web4tui("run", "export", "--run", "t2")
    assert proc.returncode == 1
    assert "[export] ⊘ blocked — needs “Adapter saved to outputs/<run>/lora”" in proc.stdout
    events = list(read_events(outputs / "t2" / "events.jsonl"))
    assert not [e for e in events if e.type == "check"]  # nothing was attempted
    finished = [e for e in events if e.type == "stage_finished"]
    assert [(e.stage, e.get("status")) for e in finished] == [("export", "blocked")]
    summary = finished[0].get("summary")
    assert summary["need"] == "full.adapter_saved"
    assert summary["blocked_by"] == summary["run_first"] == "sanity"  # where to start
    # --keep-going runs it anyway: the stage itself then says what is missing.
    proc = web4tui("run", "export", "--run", "t2", "--keep-going")
    assert proc.returncode == 1
    events = list(read_events(outputs / "t2" / "events.jsonl"))
    checks = [e for e in events if e.type == "check"]
    assert checks and all(e.get("status") == "skip" for e in checks)
    assert all("no adapter" in e.get("detail") for e in checks)


def test_a_failed_stage_blocks_the_rest_and_the_run_ends_at_once(outputs: Path) -> None:
    bad = ROOT / "tests" / "fixtures" / "bad"
    t0 = time.monotonic()
    proc = web4tui("run", "--run", "gated", sets=[f"data.train=['{bad}']", "data.eval=[]"])
    took = time.monotonic() - t0
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert took < 120, took  # stage 1 alone: no training was started
    events = list(read_events(outputs / "gated" / "events.jsonl"))
    finished = {e.stage: e for e in events if e.type == "stage_finished"}
    assert finished["sanity"].get("status") == "failed"
    later = [s for s in finished if s != "sanity"]
    assert later == ["dry_run", "mini", "full", "eval", "export", "deploy", "advice"]
    for stage in later:
        assert finished[stage].get("status") == "blocked"
        assert finished[stage].get("summary")["blocked_by"] == "sanity.valid_jsonl"
        assert finished[stage].get("duration_s") == 0.0
    assert not any(e.type == "metric" for e in events)
    assert "[dry_run] ⊘ blocked — needs 1. Sanity check, whose item “Valid JSONL” failed" \
        in proc.stdout
    assert "blocked (not started): dry_run, mini" in proc.stdout
    state = json.loads((outputs / "gated" / "state.json").read_text())
    assert state["stages"]["full"]["status"] == "blocked"


def test_bad_usage_exits_2_without_traceback(outputs: Path) -> None:
    for args, sets, needle in [
        (("run", "sanity", "--run", "bad name"), [], "not allowed"),
        (("run", "warp"), [], "unknown stage"),
        (("run", "sanity"), ["lora.rank=2"], "did you mean 'r'"),
    ]:
        proc = web4tui(*args, sets=sets)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr


def _big_dataset(folder: Path, lines: int) -> None:
    folder.mkdir()
    with open(folder / "big.jsonl", "w") as fh:
        for i in range(lines):
            fh.write(json.dumps({"task_type": "tool_neg", "instruction": f"Explain routing {i}",
                                 "input": "", "output": f"Routes map paths {i} to handlers."})
                     + "\n")


def test_detached_run_survives_its_caller_and_stops_gracefully(outputs: Path,
                                                               tmp_path: Path) -> None:
    _big_dataset(tmp_path / "big", 300_000)
    sets = [f"data.train=['{tmp_path / 'big'}']", "data.eval=[]"]
    proc = web4tui("run", "sanity", "dry_run", "--run", "t3", "--detach", sets=sets)
    assert proc.returncode == 0, proc.stderr
    assert "detached" in proc.stdout
    run = outputs / "t3"
    pid = int((run / "engine.pid").read_text().split()[0])
    # The caller is gone; the engine is alive in its own session.
    os.kill(pid, 0)
    assert os.getsid(pid) != os.getsid(0)
    # A second engine on the same run is refused while this one works.
    again = web4tui("run", "sanity", "--run", "t3", sets=sets)
    assert again.returncode == 2 and "busy" in again.stderr
    # Wait until it is reading records, then stop it.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(e.type == "progress" and e.get("unit") == "MB"
               for e in read_events(run / "events.jsonl")):
            break
        time.sleep(0.2)
    stop = subprocess.run([sys.executable, "-m", "web4tui", "stop", "t3"], capture_output=True,
                          text=True, cwd=ROOT)
    assert stop.returncode == 0 and str(pid) in stop.stdout
    deadline = time.monotonic() + 60
    while (run / "engine.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    events = list(read_events(run / "events.jsonl"))
    finished = {e.stage: e.get("status") for e in events if e.type == "stage_finished"}
    assert finished == {"sanity": "cancelled", "dry_run": "cancelled"}
    state = json.loads((run / "state.json").read_text())
    assert state["stages"]["sanity"]["status"] == "cancelled"


def test_runs_lists_runs_and_stop_without_engine(outputs: Path) -> None:
    web4tui("run", "sanity", "--run", "listed")
    proc = subprocess.run([sys.executable, "-m", "web4tui", "runs"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0 and "listed" in proc.stdout and "ok" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "web4tui", "stop", "listed"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "no engine running" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "web4tui", "stop", "nope"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "no run named" in proc.stderr


def test_sigterm_is_handled_by_the_worker(outputs: Path, tmp_path: Path) -> None:
    """The engine itself (not the CLI) turns SIGTERM into a cancelled stage."""
    _big_dataset(tmp_path / "big", 200_000)
    sets = [f"data.train=['{tmp_path / 'big'}']", "data.eval=[]"]
    proc = web4tui("run", "sanity", "--run", "t4", "--detach", sets=sets)
    assert proc.returncode == 0
    pid = int((outputs / "t4" / "engine.pid").read_text().split()[0])
    time.sleep(1.0)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while (outputs / "t4" / "engine.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    events = list(read_events(outputs / "t4" / "events.jsonl"))
    assert events[-1].type == "stage_finished" and events[-1].get("status") == "cancelled"
