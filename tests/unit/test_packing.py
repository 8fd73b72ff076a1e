"""Packing records into one sequence gives the same loss and gradients as one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine import config
from engine.backends.torch_device import place
from engine.backends.torch_lora import completion_loss, load_model, pack
from engine.training.data import IGNORE
from tests.support.tiny_model import make_tiny_model


def test_pack_groups_in_order_within_budget() -> None:
    assert pack([5, 5, 5, 9, 2], 10) == [[0, 1], [2], [3], [4]]
    assert pack([5, 5, 5], 0) == [[0], [1], [2]]
    assert pack([20, 3], 10) == [[0], [1]]  # a long record goes alone


def test_packed_loss_and_gradients_equal_separate_records(tmp_path: Path) -> None:
    cfg = config.load(None, ["lora.dropout=0.0", "train.precision=fp32"])
    model = load_model(make_tiny_model(tmp_path / "tiny"), cfg, place(cfg))
    torch.manual_seed(0)
    recs = []
    for n, p in ((9, 4), (6, 2), (11, 7)):
        ids = torch.randint(10, 40000, (n,))
        labels = ids.clone()
        labels[:p] = IGNORE
        recs.append((ids, labels))
    for p_ in model.parameters():  # give LoRA B weights so gradients reach A too
        if p_.requires_grad:
            torch.nn.init.normal_(p_, std=0.05)
    pl = place(cfg)
    model.zero_grad()
    total = sum(completion_loss(model, i, lab, pl)[0] for i, lab in recs)
    total.backward()
    separate = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    ids = torch.cat([r[0] for r in recs])
    labels = torch.cat([r[1] for r in recs])
    packed, count = completion_loss(model, ids, labels, pl, [len(r[0]) for r in recs])
    packed.backward()
    assert count == sum(int((r[1][1:] != IGNORE).sum()) for r in recs)
    assert packed.item() == pytest.approx(total.item(), rel=1e-5)
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, separate[n], atol=1e-5), n
