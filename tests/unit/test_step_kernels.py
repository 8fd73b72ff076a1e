"""The faster pieces of a torch training step compute what the plain ones do: the chunked
loss through the output projection, attention of short pieces by matrix products, and the
LoRA dropout with its cheaper mask."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine import config
from engine.backends import torch_attention, torch_dropout
from engine.backends.torch_attention import _SmallAttention
from engine.backends.torch_device import place
from engine.backends.torch_loss import head_loss
from engine.backends.torch_lora import load_model
from tests.support.tiny_model import make_tiny_model


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunked_head_loss_equals_cross_entropy(chunk: int) -> None:
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False).requires_grad_(False)
    torch.nn.init.normal_(head.weight, generator=g)
    h = torch.randn(7, 16, generator=g, requires_grad=True)
    target = torch.randint(0, 50, (7,), generator=g)
    plain = F.cross_entropy(head(h), target, reduction="sum")
    (want,) = torch.autograd.grad(plain * 0.5, h)
    mine = head_loss(head, h, target, chunk)
    (got,) = torch.autograd.grad(mine * 0.5, h)
    assert mine.item() == pytest.approx(plain.item(), rel=1e-6)
    assert torch.allclose(got, want, atol=1e-6)


def test_a_trained_head_takes_the_plain_path() -> None:
    head = torch.nn.Linear(4, 9, bias=False)  # requires grad: the fused path would drop it
    h, target = torch.randn(3, 4), torch.tensor([1, 2, 3])
    head_loss(head, h, target, 2).backward()
    assert head.weight.grad is not None


@pytest.mark.parametrize("keep", [0, 10**6])
@pytest.mark.parametrize("n,prefix,blocks", [(1, 0, 1), (6, 0, 1), (5, 4, 1), (9, 11, 1),
                                             (40, 0, 3), (40, 7, 3), (33, 5, 3)])
def test_small_attention_equals_sdpa(n: int, prefix: int, blocks: int, keep: int) -> None:
    """n queries against [prefix, themselves causally], 6 query heads on 2 key heads, in
    ``blocks`` blocks of queries (the smallest block is 16 queries), the probabilities
    recomputed in backward or ``keep`` (kept when a piece has at most that many scores)."""
    from torch.nn.attention.bias import causal_lower_right

    g = torch.Generator().manual_seed(n)
    q = torch.randn(1, 6, n, 8, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, prefix + n, 8, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 2, prefix + n, 8, generator=g, dtype=torch.float64, requires_grad=True)
    dout = torch.randn(1, 6, n, 8, generator=g, dtype=torch.float64)
    want = F.scaled_dot_product_attention(
        q, k.repeat_interleave(3, 1), v.repeat_interleave(3, 1),
        attn_mask=causal_lower_right(n, prefix + n)._materialize(), scale=0.3)
    most = 16 * (prefix + n) if blocks > 1 else 0
    assert len(_SmallAttention._blocks(n, prefix + n, most)) == blocks
    got = _SmallAttention.apply(q, k, v, 0.3, most, keep)
    assert torch.allclose(got, want, atol=1e-6)
    want_grads = torch.autograd.grad(want, (q, k, v), dout)
    got_grads = torch.autograd.grad(got, (q, k, v), dout)
    for a, b in zip(got_grads, want_grads):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("p", [0.05, 0.5])
def test_fast_dropout_drops_p_and_keeps_the_mean(p: float) -> None:
    torch.manual_seed(0)
    drop = torch_dropout.FastDropout(p)
    x = torch.ones(1000, 1000, requires_grad=True)
    y = drop(x)
    rate = (y == 0).float().mean().item()
    assert rate == pytest.approx(p, abs=0.002)  # 1 - e^-p, were the draws not Poissonised
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.unique(y).tolist() == [0.0, pytest.approx(1 / (1 - p))]
    y.sum().backward()  # the gradient passes exactly where the input was kept
    assert torch.equal(x.grad == 0, y == 0)
    assert not torch.equal(drop(x), y)  # a fresh mask per call
    drop.eval()
    assert drop(x) is x


def test_the_model_trains_with_the_fast_dropout(tmp_path: Path) -> None:
    cfg = config.load(None, ["train.precision=fp32"])
    model = load_model(make_tiny_model(tmp_path / "tiny"), cfg, place(cfg))
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)
             and "lora" in str(type(m)).lower()]
    fast = [m for m in model.modules() if isinstance(m, torch_dropout.FastDropout)]
    assert fast and not drops and all(m.p == cfg["lora"]["dropout"] for m in fast)
    assert torch_attention.math_max == cfg["train"]["attention_math_max"]


def test_a_lone_record_trains_through_the_small_attention(tmp_path: Path, monkeypatch) -> None:
    from engine.backends.packing import pack_window
    from engine.backends.torch_lora import completion_loss
    from engine.examples import IGNORE, Example

    cfg = config.load(None, ["lora.dropout=0.0", "train.precision=fp32"])
    model = load_model(make_tiny_model(tmp_path / "tiny"), cfg, place(cfg)).train()
    for p_ in model.parameters():
        if p_.requires_grad:
            torch.nn.init.normal_(p_, std=0.05, generator=torch.Generator().manual_seed(2))
    ids = torch.randint(10, 40000, (30,), generator=torch.Generator().manual_seed(3)).tolist()
    (pack,) = pack_window([Example(ids, [IGNORE] * 10 + ids[10:], "tool", "x")], 0, 0)
    calls = []
    real = _SmallAttention.apply
    monkeypatch.setattr(_SmallAttention, "apply", lambda *a: calls.append(1) or real(*a))
    out = {}
    for limit in (0, 10**6, 480):  # SDPA's kernel, the matrix products in one block, in two
        monkeypatch.setattr(torch_attention, "math_max", limit)
        model.zero_grad()
        loss, _ = completion_loss(model, pack, place(cfg), 4)
        loss.backward()
        out[limit] = (loss.item(), [p_.grad.clone() for p_ in model.parameters()
                                    if p_.requires_grad])
    assert len(calls) == 2 * model.config.num_hidden_layers  # every layer, not with SDPA
    for limit in (10**6, 480):
        assert out[0][0] == pytest.approx(out[limit][0], rel=1e-6)
        for a, b in zip(out[0][1], out[limit][1]):
            assert torch.allclose(a, b, atol=1e-5 * max(1.0, b.abs().max().item()))


def test_fast_dropout_passes_an_empty_input() -> None:
    drop = torch_dropout.FastDropout(0.1)
    assert drop(torch.ones(0, 8)).shape == (0, 8)


def test_adapters_read_bf16_inputs_and_an_adapted_output_layer_still_trains(tmp_path: Path
                                                                             ) -> None:
    """Under autocast the adapters take their input in the base's format, except the output
    layer's, which the sliced loss runs outside autocast."""
    from dataclasses import replace

    from engine.backends.packing import pack_window
    from engine.backends.torch_lora import completion_loss
    from engine.examples import IGNORE, Example

    cfg = config.load(None, ["train.precision=fp32",
                             'lora.target_modules=["q_proj", "v_proj", "lm_head"]'])
    placement = replace(place(cfg), dtype=torch.bfloat16, autocast=True)
    model = load_model(make_tiny_model(tmp_path / "tiny"), cfg, placement).train()
    flags = {name: m.cast_input_dtype_enabled for name, m in model.named_modules()
             if hasattr(m, "lora_A")}
    assert flags and [n for n, on in flags.items() if on] == [
        n for n in flags if n.endswith("lm_head")]
    ids = torch.randint(10, 40000, (24,), generator=torch.Generator().manual_seed(1)).tolist()
    (pack,) = pack_window([Example(ids, [IGNORE] * 8 + ids[8:], "tool", "x")], 0, 0)
    loss, trained = completion_loss(model, pack, placement, 4)
    loss.backward()
    assert trained == 16 and torch.isfinite(loss)
    head = model.get_base_model().get_output_embeddings()
    assert head.lora_B["default"].weight.grad is not None
