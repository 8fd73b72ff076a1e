"""The number format follows what the hardware does: CPU flags first, a timed matmul where
they promise bf16 (or cannot be read), its result cached per machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine import config
from engine.backends import precision_probe as probe
from engine.backends.packing import pack_window
from engine.backends.torch_device import place
from engine.backends.torch_lora import completion_loss, load_model
from engine.training.data import IGNORE, Example
from tests.support.tiny_model import make_tiny_model


def _cfg(tmp_path: Path, *sets: str) -> dict:
    return config.load(None, [f"model.cache_dir={tmp_path / 'cache'}", "train.device=cpu",
                              *sets])


@pytest.fixture
def timed(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Stand-in matmul timings (GFLOP/s per dtype) and a count of the probes run."""
    rates = {"calls": 0, torch.bfloat16: 700.0, torch.float32: 230.0}

    def rate(device: str, dtype: torch.dtype, *a: object, **k: object) -> float:
        rates["calls"] += 1
        return rates[dtype]
    monkeypatch.setattr(probe, "matmul_rate", rate)
    return rates


def test_cpu_without_bf16_flags_runs_fp32_without_probing(tmp_path, monkeypatch, timed) -> None:
    monkeypatch.setattr(probe, "cpu_flags", lambda: ("AMD EPYC (AVX2)", set()))
    p = place(_cfg(tmp_path))
    assert p.precision == "fp32" and not p.autocast
    assert "no bf16 instructions" in p.why and timed["calls"] == 0


def test_flags_and_a_faster_measurement_give_bf16_and_the_reason(tmp_path, monkeypatch,
                                                                  timed) -> None:
    monkeypatch.setattr(probe, "cpu_flags", lambda: ("Xeon", {"amx_bf16", "avx512_bf16"}))
    p = place(_cfg(tmp_path))
    assert p.precision == "bf16" and p.autocast and not p.loss_scaling
    assert "amx_bf16, avx512_bf16" in p.why and "700 vs fp32 230" in p.why
    assert timed["calls"] == 2
    assert place(_cfg(tmp_path)).why == p.why and timed["calls"] == 2  # cached per machine
    assert (tmp_path / "cache" / "precision-probe.json").is_file()


def test_measurement_wins_when_flags_promise_more_than_the_cpu_does(tmp_path, monkeypatch,
                                                                    timed) -> None:
    monkeypatch.setattr(probe, "cpu_flags", lambda: ("EPYC", {"avx512_bf16"}))
    timed[torch.bfloat16] = 200.0  # emulated-speed bf16 despite the flag
    p = place(_cfg(tmp_path))
    assert p.precision == "fp32" and "not 1.15x faster" in p.why
    monkeypatch.setattr(probe, "cpu_flags", lambda: None)  # unreadable flags: measure too
    assert place(_cfg(tmp_path / "other")).precision == "fp32"
    assert place(_cfg(tmp_path, "train.precision=bf16")).why == "set in the config"


def test_this_machine_is_measured_for_real(tmp_path) -> None:
    rate = probe.matmul_rate("cpu", torch.float32, size=256, seconds=0.01)
    assert rate > 0.1  # GFLOP/s: a real timing, not a constant
    flags = probe.cpu_flags()
    assert flags is None or isinstance(flags[1], set)


def test_bf16_loss_and_gradients_stay_close_to_fp32(tmp_path) -> None:
    """What the fast format costs: the loss within 2%, the gradients pointing the same way."""
    tiny = make_tiny_model(tmp_path / "tiny")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 40000, (40,), generator=g).tolist()
    pack = pack_window([Example(ids, [IGNORE] * 12 + ids[12:], "tool", "x")], 0, 0)[0]
    out = {}
    for name in ("fp32", "bf16"):
        cfg = _cfg(tmp_path, "lora.dropout=0.0", f"train.precision={name}")
        torch.manual_seed(0)
        model = load_model(tiny, cfg, place(cfg))
        for p_ in model.parameters():
            if p_.requires_grad:
                torch.nn.init.normal_(p_, std=0.05, generator=torch.Generator().manual_seed(1))
        loss, count = completion_loss(model, pack, place(cfg))
        (loss / count).backward()
        grads = torch.cat([p_.grad.flatten() for p_ in model.parameters() if p_.requires_grad])
        out[name] = (float((loss / count).detach()), grads.float())
    (l32, g32), (l16, g16) = out["fp32"], out["bf16"]
    assert abs(l16 - l32) / l32 < 0.02
    assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > 0.98
    assert (g16.norm() / g32.norm() - 1).abs() < 0.05


def test_select_owns_the_number_format_for_training_and_evaluation(tmp_path, monkeypatch,
                                                                   timed) -> None:
    from engine.backends import select

    monkeypatch.setattr(probe, "cpu_flags", lambda: ("AMD EPYC (AVX2)", set()))
    train = select(_cfg(tmp_path, "train.backend=torch"))
    assert (train.backend, train.device, train.precision) == ("torch", "cpu", "fp32")
    assert train.precision_why == place(_cfg(tmp_path)).why  # what training is placed with
    chosen = select(_cfg(tmp_path, "train.precision=bf16"))
    assert (chosen.precision, chosen.precision_why) == ("bf16", "set in the config")
    assert place(_cfg(tmp_path), chosen).dtype == torch.bfloat16
    evaluating = select(_cfg(tmp_path, "train.precision=bf16"), task="eval")
    assert (evaluating.device, evaluating.precision) == ("cpu", "fp32")  # greedy on the CPU
    mlx = select(_cfg(tmp_path, "train.backend=mlx"))
    assert mlx.precision == "model dtype" and timed["calls"] == 0
