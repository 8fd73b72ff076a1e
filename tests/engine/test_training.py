"""Training stages on a tiny random model with the real tokenizer, through the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.protocol import read_events
from tests.support.tiny_model import make_poisoned_model, make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
CKPT_FILES = {"adapter_model.safetensors", "adapter_config.json", "optimizer.safetensors",
              "optimizer.json", "scheduler.json", "rng.json", "trainer_state.json",
              "manifest.json"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


def base_sets(tiny: Path, **extra: object) -> list[str]:
    sets = {"model.id": f"'{tiny}'", "dry_run.samples": 8, "dry_run.max_steps": 12,
            "dry_run.target_loss": 0.01, "dry_run.learning_rate": 3e-2,
            "lora.target_modules": "['q_proj','k_proj','v_proj','o_proj','gate_proj','up_proj','down_proj']",
            "train.sample_every": 1000, "train.sample_max_tokens": 4,
            "train.checkpoint_every": 4, "lora.dropout": 0.1}
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]


def web4tui(*args: str, sets: list[str]) -> subprocess.CompletedProcess[str]:
    # These tests prove a training stage on its own, without the stages it needs before it.
    keep_going = ["--keep-going"] if args and args[0] == "run" else []
    cmd = [sys.executable, "-m", "web4tui", *args, *keep_going]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)


def events(run: Path) -> list:
    return list(read_events(run / "events.jsonl"))


def checks(run: Path) -> dict[str, str]:
    return {e.get("item"): e.get("status") for e in events(run) if e.type == "check"}


def test_dry_run_learns_and_writes_checkpoints(outputs: Path, tiny: Path) -> None:
    proc = web4tui("run", "dry_run", "--run", "learn",
                   sets=base_sets(tiny, **{"train.sample_every": 6}))
    run = outputs / "learn"
    losses = [e.get("values")["loss"] for e in events(run) if e.type == "metric"]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses
    st = checks(run)
    # The target is out of reach on purpose: the item must fail, the others pass.
    assert st["dry_run.loss_falls"] == "fail"
    assert st["dry_run.no_nan"] == st["dry_run.no_device_errors"] == "pass"
    assert st["dry_run.memory"] == "pass"
    assert proc.returncode == 1
    cps = sorted(p.name for p in (run / "checkpoints" / "dry_run").iterdir())
    assert cps == ["step-000004", "step-000008", "step-000012"]
    assert CKPT_FILES <= {p.name for p in (run / "checkpoints" / "dry_run" / "step-000008").iterdir()}
    state = json.loads((run / "checkpoints" / "dry_run" / "step-000012" / "trainer_state.json")
                       .read_text())
    assert state["step"] == 12 and len(state["losses"]) == 12
    assert (run / "dry_run" / "lora" / "adapter_model.safetensors").exists()
    # The adapter says which tool-call format it learned (the tiny ChatML model: plain JSON).
    assert json.loads((run / "dry_run" / "lora" / "tool_format.json").read_text())["format"] == "json"
    types = {e.type for e in events(run)}
    assert {"metric", "memory", "sample", "artifact", "progress"} <= types
    # Step 12 is both a sample step and the last: its samples are generated once.
    at = Counter(e.get("step") for e in events(run) if e.type == "sample")
    assert set(at) == {6, 12} and at[6] == at[12] > 0, at
    # The stage reports its figures when it finishes.
    done = next(e for e in events(run) if e.type == "stage_finished").get("summary")
    assert done["steps"] == 12 and done["checks"]
    assert done["final_loss"] == pytest.approx(losses[-1], abs=1e-4)


def test_dry_run_passes_when_the_target_is_reached(outputs: Path, tiny: Path) -> None:
    proc = web4tui("run", "dry_run", "--run", "reach",
                   sets=base_sets(tiny, **{"dry_run.target_loss": 11.6,
                                           "dry_run.loss_window": 2}))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "target reached" in proc.stdout
    # each check carries the number it judged beside its text
    checks = {e.get("item"): e for e in events(outputs / "reach") if e.type == "check"}
    assert checks["dry_run.loss_falls"].get("measured") < 11.6
    assert checks["dry_run.memory"].get("measured") > 0


def test_a_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(
        outputs: Path, tmp_path: Path) -> None:
    poison = "中文毒"  # CJK text no other record contains
    model = make_poisoned_model(tmp_path / "poisoned", poison)
    data = tmp_path / "data"
    data.mkdir()
    lines = (ROOT / "tests" / "fixtures" / "good" / "clean.jsonl").read_text().splitlines()
    lines.append(json.dumps({"task_type": "tool_neg", "instruction": f"What does {poison} mean?",
                             "input": "", "output": "It is a made-up word."}))
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    proc = web4tui("run", "dry_run", "--run", "nan", sets=base_sets(model, **{
        "data.train": f"['{data}']", "train.checkpoint_every": 1}))
    assert proc.returncode == 1
    run = outputs / "nan"
    evs = events(run)
    err = [e for e in evs if e.type == "error"]
    assert err and "non-finite loss" in err[0].get("message"), proc.stdout
    bad_step = int(err[0].get("message").split("at step ")[1].split()[0])
    metrics = [e.get("step") for e in evs if e.type == "metric"]
    assert metrics == list(range(1, bad_step))  # nothing trained at or after the bad step
    assert checks(run)["dry_run.no_nan"] == "fail"
    cps = sorted(p.name for p in (run / "checkpoints" / "dry_run").iterdir()) \
        if (run / "checkpoints" / "dry_run").exists() else []
    assert f"step-{bad_step:06d}" not in cps
    if bad_step > 1:
        assert cps[-1] == f"step-{bad_step - 1:06d}"
    assert not (run / "dry_run" / "lora").exists()  # no adapter from a broken run


def _has_mlx() -> bool:
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in ("mlx", "mlx_lm"))


# The same loop resumes for both backends; MLX runs on the CPU here, so fewer steps.
RESUME_CASES = [
    pytest.param({"train.backend": "torch", "dry_run.max_steps": 16}, 16, 4, id="torch"),
    pytest.param({"train.backend": "mlx", "dry_run.max_steps": 8}, 8, 2, id="mlx",
                 marks=pytest.mark.skipif(not _has_mlx(), reason="mlx / mlx-lm not installed")),
]


@pytest.mark.parametrize(("extra", "steps", "every"), RESUME_CASES)
def test_sigkill_and_resume_ends_with_the_same_adapter(outputs: Path, tiny: Path,
                                                       extra: dict, steps: int,
                                                       every: int) -> None:
    from safetensors.numpy import load_file

    sets = base_sets(tiny, **{**extra, "train.checkpoint_every": every,
                              "dry_run.grad_accum": 2})  # two (packed) records per step
    ref = web4tui("run", "dry_run", "--run", "straight", sets=sets)
    assert "wrote adapter" in ref.stdout, ref.stdout + ref.stderr
    start = web4tui("run", "dry_run", "--run", "killed", "--detach", sets=sets)
    assert start.returncode == 0, start.stderr
    run = outputs / "killed"
    pid = int((run / "engine.pid").read_text().split()[0])
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "dry_run" / f"step-{2 * every:06d}").exists():
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            os.kill(pid, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            break
    killed_at = max(e.get("step") for e in events(run) if e.type == "metric")
    assert killed_at < steps
    resumed = web4tui("run", "dry_run", "--run", "killed", "--resume", sets=sets)
    assert "resumed dry_run from step-" in resumed.stdout, resumed.stdout
    a = load_file(str(outputs / "straight" / "dry_run" / "lora" / "adapter_model.safetensors"))
    b = load_file(str(run / "dry_run" / "lora" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and a
    for k in a:
        assert abs(a[k] - b[k]).max() < 1e-5, k
    # The loss history continues where the checkpoint left it.
    last = f"step-{steps:06d}"
    state = json.loads((run / "checkpoints" / "dry_run" / last / "trainer_state.json")
                       .read_text())
    ref_state = json.loads((outputs / "straight" / "checkpoints" / "dry_run" / last
                            / "trainer_state.json").read_text())
    assert state["losses"] == pytest.approx(ref_state["losses"], abs=1e-5)


def test_a_stage_with_nothing_to_train_refuses_and_says_why(outputs: Path, tiny: Path) -> None:
    proc = web4tui("run", "dry_run", "--run", "short", sets=base_sets(tiny, **{
        "dry_run.seq_len": 16}))
    assert proc.returncode == 1
    assert "no trainable tokens" in proc.stdout and "dry_run.seq_len" in proc.stdout


def test_full_stage_saves_a_peft_adapter_that_loads(outputs: Path, tiny: Path) -> None:
    data = ROOT / "tests" / "fixtures" / "good"
    proc = web4tui("run", "full", "--run", "full", sets=base_sets(tiny, **{
        "data.train": f"['{data}']", "full.grad_accum": 2, "full.epochs": 2,
        "train.curve_min_points": 2}))
    run = outputs / "full"
    st = checks(run)
    assert st["full.adapter_saved"] == "pass", proc.stdout
    assert st["full.config"] == "pass" and st["full.no_nan"] == "pass"
    assert st["full.loss_plateau"] in ("pass", "warn", "fail")
    assert (run / "lora" / "adapter_config.json").exists()
    assert (run / "lora" / "web4tui-config.toml").exists()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), run / "lora")
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_mini_stage_trains_and_scores_its_gates(outputs: Path, tiny: Path) -> None:
    proc = web4tui("run", "mini", "--run", "mini", sets=base_sets(tiny, **{
        "mini.samples": 6, "mini.grad_accum": 2, "eval.max_per_bucket": 10,
        "train.curve_min_points": 2}))
    run = outputs / "mini"
    st = checks(run)
    gates = ("mini.tool_json", "mini.style_match", "mini.eval_tool", "mini.eval_style",
             "mini.eval_guardrail")
    # A random 2-layer model cannot write tool JSON: the gates are judged, and fail.
    assert {st[g] for g in gates} == {"fail"}, st
    values = {e.get("item"): e.get("value") for e in events(run) if e.type == "check"}
    assert values["mini.tool_json"] == "0/10"
    assert st["mini.loss_stable"] in ("pass", "warn", "fail")
    assert proc.returncode == 1
    assert (run / "mini" / "lora" / "adapter_model.safetensors").exists()
