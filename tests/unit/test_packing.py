"""Packing records into one sequence — sharing their common prompt prefix — gives the same
loss and gradients as running them one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine import config
from engine.backends import torch_attention
from engine.backends.packing import pack_window
from engine.backends.torch_device import place
from engine.backends.torch_lora import completion_loss, load_model
from engine.examples import IGNORE, Example
from tests.support.tiny_model import make_tiny_model


def ex(ids: list[int], prompt: int) -> Example:
    return Example(ids, [IGNORE] * prompt + ids[prompt:], "tool", str(ids[:3]))


def test_pack_groups_in_order_within_budget() -> None:
    recs = [ex(list(range(k * 10, k * 10 + n)), 2) for k, n in enumerate((5, 5, 5, 9, 2))]
    assert [p.records for p in pack_window(recs, 10, 0)] == [2, 1, 1, 1]
    assert [p.records for p in pack_window(recs, 0, 0)] == [1] * 5
    assert [len(p) for p in pack_window([ex(list(range(20)), 2), ex([1, 2, 3], 1)], 10, 0)] \
        == [20, 3]  # a long record goes alone


def test_common_prefix_runs_once_and_stops_before_trained_tokens() -> None:
    frame = list(range(100, 140))  # 40 prompt tokens every record opens with
    a = ex(frame + [1, 2, 3, 4], 42)
    b = ex(frame + [5, 6, 7], 41)
    c = ex(list(range(500, 520)), 10)  # another frame
    packs = pack_window([a, c, b], 4096, 8)
    assert len(packs) == 1
    p = packs[0]
    # a and b share 40 tokens (b's prefix may not reach its first trained token's prediction)
    assert p.shared_tokens == 40
    assert len(p) == 40 + 4 + 3 + 20
    assert p.trained == sum(1 for e in (a, b, c) for lab in e.labels[1:] if lab != IGNORE)
    assert [p.records for p in pack_window([a, c, b], 4096, 41)] == [3]
    assert pack_window([a, c, b], 4096, 41)[0].shared_tokens == 0  # under the minimum


def _model(tmp_path: Path):
    cfg = config.load(None, ["lora.dropout=0.0", "train.precision=fp32"])
    model = load_model(make_tiny_model(tmp_path / "tiny"), cfg, place(cfg))
    # the piecewise attention is what runs (a dense mask would also be exact, only slower)
    assert model.config._attn_implementation == torch_attention.NAME
    for p_ in model.parameters():  # give LoRA B weights so gradients reach A too
        if p_.requires_grad:
            torch.nn.init.normal_(p_, std=0.05)
    return model, place(cfg)


def _grads(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("share,chunk", [(0, 0), (4, 0), (4, 3)])
def test_packed_loss_and_gradients_equal_separate_records(tmp_path: Path, share: int,
                                                          chunk: int) -> None:
    model, pl = _model(tmp_path)
    g = torch.Generator().manual_seed(0)
    frame = torch.randint(10, 40000, (7,), generator=g).tolist()
    recs = []
    for n, p in ((9, 4), (6, 2), (11, 7), (5, 3)):
        recs.append(ex(frame + torch.randint(10, 40000, (n,), generator=g).tolist(), 7 + p))
    recs.append(ex(torch.randint(10, 40000, (8,), generator=g).tolist(), 3))
    alone = [pack_window([r], 0, 0)[0] for r in recs]
    total = sum(completion_loss(model, p, pl)[0] for p in alone)
    separate = _grads(model, total)
    packs = pack_window(recs, 4096, share)
    # four records share the 7-token frame: three copies of it are not computed
    assert len(packs) == 1 and packs[0].shared_tokens == (3 * 7 if share else 0)
    packed, count = completion_loss(model, packs[0], pl, chunk)  # chunk: the loss by slices
    together = _grads(model, packed)
    assert count == sum(p.trained for p in alone)
    assert packed.item() == pytest.approx(total.item(), rel=1e-5)
    for n, grad in together.items():
        # fp32 rounding: the packed pieces run another attention kernel than a lone record
        scale = separate[n].abs().max().item()
        assert (grad - separate[n]).abs().max().item() <= 1e-5 * max(1.0, scale), n


def test_piecewise_attention_equals_the_dense_mask() -> None:
    """Each record against [its prefix, itself] gives what one dense block mask gives, with
    grouped-query heads, without ever forming the N×N scores."""
    from types import SimpleNamespace

    from engine.backends.torch_attention import dense_mask, packed_attention

    a, b, c = ex(list(range(100, 112)) + [1, 2, 3], 13), ex(list(range(100, 112)) + [4, 5], 13), \
        ex([7, 8, 9, 10], 1)
    p = pack_window([a, b, c], 4096, 4)[0]
    assert p.layout == [(0, 0, [(0, 4)]), (4, 12, [(16, 3), (19, 2)])]  # sorted by tokens
    g = torch.Generator().manual_seed(1)
    n = len(p)
    q = torch.randn(1, 4, n, 8, generator=g, requires_grad=True)
    k = torch.randn(1, 2, n, 8, generator=g, requires_grad=True)
    v = torch.randn(1, 2, n, 8, generator=g, requires_grad=True)
    group, branch = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    for g, (start, shared, records) in enumerate(p.layout):
        group[start:start + shared] = g
        for b, (r0, m) in enumerate(records, start=1):
            group[r0:r0 + m], branch[r0:r0 + m] = g, b
    mask = ((group[:, None] == group[None, :])
            & ((branch[None, :] == 0) | (branch[None, :] == branch[:, None]))
            & torch.ones(n, n, dtype=torch.bool).tril())
    assert torch.equal(dense_mask(p.layout, n)[0, 0], mask)  # the fallback for other models
    dense = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=mask)
    mine, _ = packed_attention(SimpleNamespace(training=False), q, k, v, None,
                               packed_layout=p.layout)
    assert torch.allclose(mine, dense.transpose(1, 2), atol=1e-6)
    (dg,) = torch.autograd.grad(dense.sum(), k)
    (mg,) = torch.autograd.grad(mine.sum(), k)
    assert torch.allclose(mg, dg, atol=1e-5)


def test_the_long_shared_listing_wins_over_the_short_system_prompt() -> None:
    system, listing = list(range(100, 105)), list(range(200, 230))
    style = [ex(system + [1, k, 9, 9], 7) for k in (1, 2)]
    tools = [ex(system + listing + [3, k, 8], 37) for k in (1, 2, 3)]
    window = [style[0], tools[0], style[1], tools[1], tools[2]]
    (p,) = pack_window(window, 4096, 4)
    # the tool records run system + listing once; the style records share the system prompt
    assert sorted((shared, len(recs)) for _, shared, recs in p.layout) == [(6, 2), (36, 3)]
    assert p.shared_tokens == 2 * 36 + 1 * 6
    assert p.trained == sum(1 for e in window for lab in e.labels[1:] if lab != IGNORE)
