"""Training on two processes (torch.distributed.run, gloo, this CPU) against one process.

The global batch is the same whatever the number of processes, so with a deterministic model
(no dropout, fp32) the two follow the same losses; a killed process fails the stage at once;
a stop reaches both, and the stage resumes on one process at the next step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from engine.protocol import read_events
from tests.support.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
STEPS = 8


@pytest.fixture(scope="module")
def outputs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tiny = make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")
    # Four records per step: two for each process. No dropout and fp32, so one process and
    # two compute the same function; the target is out of reach, so every run takes STEPS.
    values = {"model.id": f"'{tiny}'", "dry_run.samples": 8, "dry_run.max_steps": STEPS,
              "dry_run.grad_accum": 4, "dry_run.target_loss": 0.001,
              "dry_run.learning_rate": 3e-2, "lora.dropout": 0.0, "train.precision": "fp32",
              "train.sample_every": 1000, "train.sample_max_tokens": 4,
              "train.checkpoint_every": 1000}
    return [f"{k}={v}" for k, v in values.items()]


def web4tui(outputs: Path, *args: str, sets: list[str], processes: int
            ) -> subprocess.CompletedProcess[str]:
    # One training stage on its own: the stages it needs are not run (--keep-going).
    cmd = [sys.executable, "-m", "web4tui", *args, "--keep-going"]
    for s in [*sets, f"train.processes={processes}"]:
        cmd += ["--set", s]
    env = {**os.environ, "WEB4TUI_OUTPUTS": str(outputs)}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def events(run: Path, type: str) -> list:
    return [e for e in read_events(run / "events.jsonl") if e.type == type]


def losses(run: Path) -> dict[int, float]:
    return {e.get("step"): e.get("values")["loss"] for e in events(run, "metric")}


@pytest.fixture(scope="module")
def one(outputs_dir: Path, sets: list[str]) -> Path:
    """The reference: the same stage on one process."""
    proc = web4tui(outputs_dir, "run", "dry_run", "--run", "one", sets=sets, processes=1)
    assert "wrote adapter" in proc.stdout, proc.stdout + proc.stderr
    return outputs_dir / "one"


def rank_processes(engine_pid: int) -> dict[str, psutil.Process]:
    """The training processes under the engine by rank (the launcher has no RANK)."""
    found = {}
    for p in psutil.Process(engine_pid).children(recursive=True):
        rank = p.environ().get("RANK")
        if rank is not None and "engine.stages.training_rank" in p.cmdline():
            found[rank] = p
    return found


def start_detached(outputs: Path, name: str, sets: list[str], after_steps: int
                   ) -> tuple[Path, int]:
    """Start two processes detached; return once ``after_steps`` steps are reported."""
    proc = web4tui(outputs, "run", "dry_run", "--run", name, "--detach", sets=sets,
                   processes=2)
    assert proc.returncode == 0, proc.stderr
    run = outputs / name
    pid = int((run / "engine.pid").read_text().split()[0])
    deadline = time.monotonic() + 300
    while len(events(run, "metric")) < after_steps:
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)
    return run, pid


def wait_gone(pid: int, limit_s: float) -> float:
    t0 = time.monotonic()
    try:
        psutil.Process(pid).wait(limit_s)
    except psutil.NoSuchProcess:
        pass
    return time.monotonic() - t0


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_follow_the_one_process_losses(outputs_dir: Path, sets: list[str],
                                                     one: Path, strategy: str) -> None:
    from safetensors.numpy import load_file

    proc = web4tui(outputs_dir, "run", "dry_run", "--run", f"two-{strategy}",
                   sets=[*sets, f"train.strategy={strategy}", "train.sample_every=4"],
                   processes=2)
    two = outputs_dir / f"two-{strategy}"
    assert f"on 2 processes under torch.distributed.run ({strategy}, gloo, fp32" in proc.stdout, \
        proc.stdout + proc.stderr
    a, b = losses(one), losses(two)
    assert list(a) == list(b) == list(range(1, STEPS + 1))
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-4), (step, a, b)
    # the same adapter at the end: the same optimizer steps were taken. Each process packs
    # its own records, so fp32 sums run in another order, and AdamW turns those 1e-7-sized
    # gradient differences into update differences of up to ~1e-4 (steps of lr 3e-2 scale).
    wa = load_file(str(one / "dry_run" / "lora" / "adapter_model.safetensors"))
    wb = load_file(str(two / "dry_run" / "lora" / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and wa
    biggest = max(abs(wa[k]).max() for k in wa)
    assert max(abs(wa[k] - wb[k]).max() for k in wa) < 1e-3 * biggest, biggest
    # one run header naming the launch; one stream; memory from both processes
    (hello,) = events(two, "hello")
    assert (hello.get("launcher"), hello.get("world_size"), hello.get("dist_backend"),
            hello.get("devices")) == ("torch.distributed.run", 2, "gloo", ["cpu", "cpu"])
    assert [e.seq for e in read_events(two / "events.jsonl")] == \
        list(range(1, len(list(read_events(two / "events.jsonl"))) + 1))
    memory = events(two, "memory")
    assert memory and all([r["rank"] for r in m.get("ranks")] == [0, 1] for m in memory)
    assert all(m.get("rss_gb") == max(r["rss_gb"] for r in m.get("ranks")) for m in memory)
    # samples come once per sample step, also when every process must take part (fsdp)
    assert {e.get("step") for e in events(two, "sample")} == {4, STEPS}
    assert len(events(two, "sample")) == len(events(one, "sample")) * 2
    # the first process wrote the checkpoint and the adapter once; the second logged
    assert [e.get("kind") for e in events(two, "artifact")] == ["checkpoint", "adapter"]
    assert " rank1 " in (two / "engine.log").read_text()


def test_a_killed_process_fails_the_stage_within_seconds(outputs_dir: Path,
                                                         sets: list[str]) -> None:
    long = [*sets, "dry_run.max_steps=300"]
    run, pid = start_detached(outputs_dir, "killed", long, after_steps=2)
    ranks = rank_processes(pid)
    assert set(ranks) == {"0", "1"}
    ranks["1"].kill()
    took = wait_gone(pid, 60)
    assert took < 60, "the engine did not end after a training process died"
    (finished,) = events(run, "stage_finished")
    assert finished.get("status") == "failed"
    (error,) = events(run, "error")
    assert "training process 1 of 2 ended" in error.get("message")
    assert "SIGKILL" in error.get("message") and error.get("detail")
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                   for p in ranks.values())
    state = json.loads((run / "state.json").read_text())
    assert state["stages"]["dry_run"]["status"] == "failed"


def test_a_stop_reaches_every_process_and_resumes_on_one(outputs_dir: Path, sets: list[str],
                                                         one: Path) -> None:
    run, pid = start_detached(outputs_dir, "stopped", sets, after_steps=3)
    ranks = rank_processes(pid)
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid, 120) < 120
    (finished,) = events(run, "stage_finished")
    assert finished.get("status") == "cancelled"
    stopped_at = max(losses(run))
    assert stopped_at < STEPS
    # both finished the step they were on and the first saved it, once
    saved = [e.get("path") for e in events(run, "artifact")]
    assert saved == [str(run / "checkpoints" / "dry_run" / f"step-{stopped_at:06d}")]
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                   for p in ranks.values())
    # the data position counts records, not processes: one process continues the schedule
    proc = web4tui(outputs_dir, "run", "dry_run", "--run", "stopped", "--resume", sets=sets,
                   processes=1)
    assert f"resumed dry_run from step-{stopped_at:06d}" in proc.stdout, proc.stdout
    after = losses(run)
    assert list(after) == list(range(1, STEPS + 1))
    ref = losses(one)
    for step in range(stopped_at + 1, STEPS + 1):
        assert after[step] == pytest.approx(ref[step], abs=1e-4), (step, after, ref)
