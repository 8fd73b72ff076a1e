"""The MLX backend on a tiny random model, through the command line (real MLX: on Linux its CPU
backend, slow — a few steps only)."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    import mlx.core  # noqa: F401
    import mlx_lm  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"mlx / mlx-lm cannot be imported here ({exc}); on Linux install `mlx[cpu]` "
                "and mlx-lm", allow_module_level=True)

from tests.engine.test_training import base_sets, checks, events, web4tui
from tests.support.tiny_model import make_tiny_model

MLX_CKPT_FILES = {"adapters.safetensors", "optimizer.safetensors", "rng.json",
                  "trainer_state.json"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # SmolLM2's rope base, saved the way transformers 5 saves it (in rope_parameters): a loader
    # that misses it builds a model with the default base, and the logits below disagree
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", rope_theta=1e5)


def mlx_sets(tiny: Path, **extra: object) -> list[str]:
    return base_sets(tiny, **{"train.backend": "mlx", **extra})


def test_mlx_lora_learns_with_the_torch_events_and_a_peft_adapter(outputs: Path,
                                                                  tiny: Path) -> None:
    proc = web4tui("run", "dry_run", "--run", "mlx", sets=mlx_sets(tiny))
    run = outputs / "mlx"
    assert "on mlx/cpu" in proc.stdout, proc.stdout + proc.stderr
    assert "scale = alpha / r = 16/8 = 2" in proc.stdout
    evs = events(run)
    losses = [e.get("values")["loss"] for e in evs if e.type == "metric"]
    assert len(losses) == 12, proc.stdout + proc.stderr
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(
        next(e for e in evs if e.type == "metric").get("values"))
    assert {"metric", "memory", "sample", "artifact", "progress"} <= {e.type for e in evs}
    st = checks(run)
    assert st["dry_run.no_nan"] == st["dry_run.no_device_errors"] == st["dry_run.memory"] \
        == "pass"
    cps = run / "checkpoints" / "dry_run"
    assert sorted(p.name for p in cps.iterdir()) == ["step-000004", "step-000008",
                                                     "step-000012"]
    assert MLX_CKPT_FILES <= {p.name for p in (cps / "step-000008").iterdir()}

    # The PEFT adapter loads for evaluation and computes what the MLX model computed.
    import mlx.core as mx
    import numpy as np
    import torch
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.backends.mlx_base import load_base
    from engine.backends.mlx_peft import lora_keys

    lora = run / "dry_run" / "lora"
    assert (lora / "adapter_config.json").exists()
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), lora)
    peft_model.eval()
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in peft_model.named_parameters())
    model, _ = load_base(tiny, None, 64)  # as the trainer loaded it
    model.freeze()
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    linear_to_lora_layers(model, len(model.layers), {"rank": 8, "scale": 2.0, "dropout": 0.0,
                                                     "keys": sorted(lora_keys(model, targets))})
    model.load_weights(list(mx.load(str(cps / "step-000012" / "adapters.safetensors")).items()),
                       strict=False)
    model.eval()
    ids = [1, 520, 2231, 314, 4590, 28, 17, 99]
    mine = np.asarray(model(mx.array(ids)[None])[0].astype(mx.float32))
    with torch.no_grad():
        theirs = peft_model(torch.tensor([ids])).logits[0].float().numpy()
    assert np.abs(mine - theirs).max() < 1e-3


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


def test_the_quantized_base_is_built_once_and_reused(tiny: Path, model_cache: Path) -> None:
    import json

    from mlx.nn import QuantizedLinear
    from mlx_lm.utils import load_model

    from engine.backends.mlx_base import quantized_base

    folder, reused = quantized_base(tiny, 8, 32, str(model_cache))
    assert not reused and folder.parent == model_cache
    saved = json.loads((folder / "config.json").read_text())
    assert saved["quantization"] == {"group_size": 32, "bits": 8, "mode": "affine"}
    assert saved["rope_theta"] == 1e5  # where mlx-lm reads it
    again, reused = quantized_base(tiny, 8, 32, str(model_cache))
    assert reused and again == folder
    model, _ = load_model(folder)
    assert isinstance(model.layers[0].self_attn.q_proj, QuantizedLinear)
    assert quantized_base(tiny, 4, 32, str(model_cache))[0] != folder  # other bits, other copy


def test_mlx_qlora_4bit_learns(outputs: Path, tiny: Path, model_cache: Path) -> None:
    proc = web4tui("run", "dry_run", "--run", "q4", sets=mlx_sets(tiny, **{
        "train.quantize_base": "'4'", "train.quantize_group_size": 32,
        "model.cache_dir": f"'{model_cache}'",
        "dry_run.samples": 4, "dry_run.max_steps": 12}))
    run = outputs / "q4"
    assert "quantized with MLX to 4 bits, group size 32" in proc.stdout, proc.stdout
    losses = [e.get("values")["loss"] for e in events(run) if e.type == "metric"]
    assert len(losses) == 12, proc.stdout + proc.stderr
    # Four records seen three times: the last pass over them against the first.
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.3, losses
    assert checks(run)["dry_run.no_nan"] == "pass"
    assert (run / "dry_run" / "lora" / "adapter_model.safetensors").exists()


def test_torch_refuses_a_quantized_base(outputs: Path, tiny: Path) -> None:
    proc = web4tui("run", "dry_run", "--run", "tq", sets=base_sets(tiny, **{
        "train.backend": "torch", "train.quantize_base": "'4'"}))
    assert proc.returncode == 1
    assert "quantize_base needs the mlx backend" in proc.stdout, proc.stdout


# Resuming after a kill is tested for both backends in tests/engine/test_training.py.


def test_a_qlora_adapter_evaluates_and_exports_like_a_torch_one(outputs: Path, tiny: Path,
                                                                 model_cache: Path) -> None:
    """MLX QLoRA → stage 5 (the eval files scored through the PEFT adapter) → stage 6 (merge,
    GGUF, llama.cpp parity, Q4_K_M, the ±1-point check) in one headless run."""
    data = Path(__file__).resolve().parents[2] / "data"
    proc = web4tui("run", "full", "eval", "export", "--run", "mlx-e2e", sets=mlx_sets(tiny, **{
        "train.quantize_base": "'4'", "train.quantize_group_size": 32,
        "model.cache_dir": f"'{model_cache}'",
        "data.train": f"['{Path(__file__).resolve().parents[1] / 'fixtures/good'}']",
        "full.grad_accum": 2, "train.curve_min_points": 2,
        "data.eval": f"['{data / 'eval'}']", "data.tools": f"'{data / 'tools.json'}'",
        "eval.max_per_bucket": 1, "eval.max_new_tokens": 8,
        "export.quant": "q4_k_m", "export.parity_eval_per_bucket": 1,
        "export.eval_max_new_tokens": 8}))
    run = outputs / "mlx-e2e"
    st = checks(run)
    assert "quantized with MLX to 4 bits" in proc.stdout, proc.stdout + proc.stderr
    assert st["full.adapter_saved"] == "pass", proc.stdout
    # A random model misses the eval targets, honestly: every bucket scored and logged.
    assert st["eval.logged"] == "pass", proc.stdout
    rows = (run / "eval" / "records.jsonl").read_text().splitlines()
    assert len(rows) == 5
    assert {st[i] for i in ("export.merge", "export.gguf", "export.quantize",
                            "export.parity")} == {"pass"}, proc.stdout
    assert (run / "gguf" / "model-q4_k_m.gguf").stat().st_size > 0
