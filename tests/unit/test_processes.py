"""How many training processes a setting means on each kind of machine, and the run header."""

from __future__ import annotations

import pytest

from engine import config
from engine.backends import distributed


def cfg(processes: object) -> dict:
    c = config.defaults()
    c["train"]["processes"] = processes
    return c


def test_auto_is_one_process_on_a_cpu_and_a_number_is_taken_as_given() -> None:
    assert distributed.processes(cfg("auto"), "torch", "cpu")[0] == 1
    assert distributed.processes(cfg(3), "torch", "cpu")[0] == 3


@pytest.mark.parametrize(("backend", "device"), [("mlx", "gpu"), ("mlx", "cpu"), ("torch", "mps")])
def test_mlx_and_mps_always_train_in_one_process(backend: str, device: str) -> None:
    n, why = distributed.processes(cfg(4), backend, device)
    assert n == 1 and "one process" in why


def test_more_processes_than_cuda_devices_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.processes(cfg("auto"), "torch", "cuda")[0] == 2
    with pytest.raises(distributed.WorldError, match="2 CUDA device"):
        distributed.processes(cfg(4), "torch", "cuda")


def test_the_run_header_names_launcher_world_size_transport_and_devices(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.header(cfg("auto"), "torch", "cuda") == {
        "launcher": "torch.distributed.run", "world_size": 2, "dist_backend": "nccl",
        "devices": ["cuda:0", "cuda:1"]}
    assert distributed.header(cfg(2), "torch", "cpu")["dist_backend"] == "gloo"
    assert distributed.header(cfg("auto"), "torch", "cpu") == {
        "launcher": None, "world_size": 1, "dist_backend": None, "devices": ["cpu"]}


def test_each_process_takes_every_nth_record_of_a_step() -> None:
    window = list("abcde")
    shares = [distributed.World(rank=r, size=2).share(window) for r in range(2)]
    assert shares == [["a", "c", "e"], ["b", "d"]]
    assert distributed.SINGLE.share(window) == window


@pytest.mark.parametrize("value", ["auto", "2", "1"])
def test_processes_is_auto_or_a_number(value: str) -> None:
    got = config.load(None, [f"train.processes={value}"])["train"]["processes"]
    assert got == (value if value == "auto" else int(value))


@pytest.mark.parametrize("value", ["0", "'many'", "1.5"])
def test_other_process_counts_are_refused(value: str) -> None:
    with pytest.raises(config.ConfigError, match="train.processes"):
        config.load(None, [f"train.processes={value}"])


LAUNCHER_SUMMARY = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
engine.stages.training_rank FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-01_14:34:13
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 6391)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 6391
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-01_14:34:12
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 6392)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 6392
============================================================"""


def launcher_failed(summary: str, tmp_path):
    """(the error event's kind and payload, the stage's result) for a launcher summary."""
    from pathlib import Path

    from engine.context import StageContext
    from engine.training import ranks
    from engine.training.plan import TrainPlan

    seen = []
    ctx = StageContext(cfg=config.defaults(), emit=lambda type, **p: seen.append((type, p)))
    plan = TrainPlan(stage="dry_run", grad_accum=2, epochs=1, max_steps=4, stop_when=None,
                     checkpoint_root=Path(tmp_path), adapter_dir=Path(tmp_path))
    result = ranks.failed(ctx, plan, 2, tmp_path, 1, summary.splitlines(),
                          ranks._Relay(ctx, tmp_path / "none.jsonl"))
    (kind, error), = seen
    return kind, error, result


def test_a_failure_names_the_process_that_died_not_those_the_launcher_ended(tmp_path) -> None:
    kind, error, result = launcher_failed(LAUNCHER_SUMMARY, tmp_path)
    assert kind == "error" and result.status == "failed"
    assert error["message"].startswith("training process 1 of 2 ended: Signal 9 (SIGKILL)")
    assert "Root Cause" in error["detail"]


PEER_FIRST = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
engine.stages.training_rank FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-01_15:14:01
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 7102)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 7102
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-01_15:14:00
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 7101)
  error_file: /tmp/error.json
  traceback : Traceback (most recent call last):
============================================================"""


def test_a_killed_process_is_named_even_when_its_peer_failed_first(tmp_path) -> None:
    """The survivor's collective fails the moment its peer vanishes, and the launcher may
    see that traceback first; the process that was killed is still the one named."""
    _, error, _ = launcher_failed(PEER_FIRST, tmp_path)
    assert error["message"].startswith("training process 1 of 2 ended: Signal 9 (SIGKILL)")
