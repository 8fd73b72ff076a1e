"""Resuming from a run folder someone else made: nothing in it runs, and only a complete
checkpoint is ever resumed (a real tiny-model run, then its files replaced or removed)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.protocol import read_events
from engine.training import checkpoint as ckpt
from tests.support.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
STATE_FILES = ("optimizer.safetensors", "optimizer.json", "scheduler.json", "rng.json",
               "trainer_state.json", "adapter_model.safetensors", "adapter_config.json")


class Evil:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def sets_for(tiny: Path, steps: int) -> list[str]:
    return [f"model.id='{tiny}'", "dry_run.samples=8", f"dry_run.max_steps={steps}",
            "dry_run.target_loss=0.01", "dry_run.learning_rate=3e-2", "train.sample_every=1000",
            "train.sample_max_tokens=4", "train.checkpoint_every=2", "lora.dropout=0.1"]


def web4tui(outputs: Path, *args: str, sets: list[str]) -> subprocess.CompletedProcess[str]:
    # A dry run on its own, without stage 1 before it.
    cmd = [sys.executable, "-m", *args, *(["--keep-going"] if "run" in args[1:2] else [])]
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ, WEB4TUI_OUTPUTS=str(outputs))
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished 4-step dry run with checkpoints at steps 2 and 4 (step 4 saved twice)."""
    tiny = make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")
    outputs = tmp_path_factory.mktemp("outputs")
    proc = web4tui(outputs, "web4tui", "run", "dry_run", "--run", "base", sets=sets_for(tiny, 4))
    assert "wrote adapter" in proc.stdout, proc.stdout + proc.stderr
    cps = outputs / "base" / "checkpoints" / "dry_run"
    assert sorted(p.name for p in cps.iterdir()) == ["step-000002", "step-000004"]
    return outputs, tiny


def copy_run(outputs: Path, name: str) -> Path:
    dest = outputs / name
    shutil.copytree(outputs / "base", dest)
    return dest


def poison(cp: Path, name: str, payload: bytes) -> None:
    """Replace one file and rewrite the manifest, as someone preparing a folder would."""
    (cp / name).write_bytes(payload)
    ckpt.write_manifest(cp)


def test_a_pickle_in_any_state_file_never_runs_and_the_resume_is_refused(
        trained: tuple[Path, Path], tmp_path: Path) -> None:
    outputs, tiny = trained
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Evil(marker))
    pickle.loads(payload)  # the payload is live: loading it does run the command
    assert marker.exists()
    marker.unlink()
    for i, name in enumerate(STATE_FILES):
        run = copy_run(outputs, f"p{i}")
        for cp in (run / "checkpoints" / "dry_run").iterdir():
            poison(cp, name, payload)
        proc = web4tui(outputs, "web4tui", "run", "dry_run", "--run", run.name, "--resume",
                       sets=sets_for(tiny, 4))
        assert not marker.exists(), name
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        assert name in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_pickle_state_files_of_an_older_version_are_never_loaded(
        trained: tuple[Path, Path], tmp_path: Path) -> None:
    import torch

    outputs, tiny = trained
    marker = tmp_path / "pwned"
    run = copy_run(outputs, "legacy")
    for cp in (run / "checkpoints" / "dry_run").iterdir():
        for name in ("optimizer.safetensors", "optimizer.json", "scheduler.json", "rng.json"):
            (cp / name).unlink()
        for name in ckpt.PICKLE_STATE:
            torch.save(Evil(marker), cp / name)
        ckpt.write_manifest(cp)
    proc = web4tui(outputs, "web4tui", "run", "dry_run", "--run", "legacy", "--resume",
                   sets=sets_for(tiny, 4))
    assert proc.returncode == 2 and "pickle files" in proc.stderr, proc.stderr
    assert not marker.exists()


def test_the_engine_itself_refuses_a_poisoned_checkpoint_with_a_hint(
        trained: tuple[Path, Path], tmp_path: Path) -> None:
    """The engine checks again as it loads (it may be started without `start`'s check)."""
    outputs, _tiny = trained
    marker = tmp_path / "pwned"
    run = copy_run(outputs, "direct")
    for cp in (run / "checkpoints" / "dry_run").iterdir():
        poison(cp, "rng.json", pickle.dumps(Evil(marker)))
    proc = web4tui(outputs, "engine", "work", str(run), "dry_run", "--resume", "--keep-going",
                   sets=[])
    assert proc.returncode == 1
    assert not marker.exists()
    new = [e for e in read_events(run / "events.jsonl") if e.type == "error"]
    assert new and "rng.json" in new[-1].get("message"), new
    assert "without --resume" in new[-1].get("hint")
    finished = [e for e in read_events(run / "events.jsonl") if e.type == "stage_finished"]
    assert finished[-1].get("status") == "failed"


def test_a_damaged_newest_checkpoint_resumes_from_the_previous_complete_one(
        trained: tuple[Path, Path]) -> None:
    from safetensors.torch import load_file

    outputs, tiny = trained
    run = copy_run(outputs, "half")
    (run / "checkpoints" / "dry_run" / "step-000004" / "adapter_model.safetensors").unlink()
    shutil.rmtree(run / "dry_run" / "lora")
    proc = web4tui(outputs, "web4tui", "run", "dry_run", "--run", "half", "--resume",
                   sets=sets_for(tiny, 4))
    assert "checkpoint step-000004 is incomplete (adapter_model.safetensors is missing)" \
        in proc.stdout, proc.stdout + proc.stderr
    assert "resumed dry_run from step-000002" in proc.stdout
    a = load_file(str(outputs / "base" / "dry_run" / "lora" / "adapter_model.safetensors"))
    b = load_file(str(run / "dry_run" / "lora" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-5, k
    state = json.loads((run / "checkpoints" / "dry_run" / "step-000004" / "trainer_state.json")
                       .read_text())
    assert state["step"] == 4 and ckpt.verify(run / "checkpoints" / "dry_run" / "step-000004") \
        is None
