"""FSDP for the torch backend (``train.strategy = "fsdp"``): the base model sharded across
the training processes, the LoRA weights the only ones trained.

Each decoder layer is one unit of ``fully_shard`` (FSDP2) and the rest of the model (the
embeddings, the final norm, the head) the root, so one process holds 1/N of the frozen base
and gathers a layer only while it runs. Whatever reads or writes whole weights — a
checkpoint, the adapter, a sample — is then a step every process takes together: the LoRA
weights and their optimizer state are gathered whole (they are small) in the same order on
every process, and written by the first only.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

__all__ = ["full_adapter", "full_optimizer", "load_adapter", "load_optimizer", "shard",
           "unsharded", "whole"]


def shard(loss_module: torch.nn.Module, model: Any) -> torch.nn.Module:
    """Shard ``loss_module`` (which runs ``model``) one decoder layer at a time."""
    from torch.distributed.fsdp import fully_shard

    for layer in model.get_base_model().get_decoder().layers:
        fully_shard(layer)
    return fully_shard(loss_module)


def whole(t: Any) -> torch.Tensor:
    """A sharded tensor gathered whole (collective); any other tensor as it is."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def full_adapter(model: Any) -> dict[str, torch.Tensor]:
    """Every trained weight, whole, by its name in ``model.state_dict()`` (collective)."""
    return {name: whole(p.detach()).cpu() for name, p in model.named_parameters()
            if p.requires_grad}


def full_optimizer(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state dict with every sharded tensor gathered whole (collective)."""
    sd = opt.state_dict()
    sd["state"] = {i: {k: whole(v).cpu() if torch.is_tensor(v) else v for k, v in s.items()}
                   for i, s in sd["state"].items()}
    return sd


def _like(full: torch.Tensor, param: Any) -> Any:
    """``full`` laid out as ``param`` is (this process's shard of it when sharded)."""
    if not hasattr(param, "device_mesh"):
        return full.to(param.device)
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full.to(param.device, param.dtype), param.device_mesh,
                             param.placements)


def load_adapter(model: Any, weights: dict[str, torch.Tensor]) -> None:
    """Put a saved adapter's weights (PEFT's names: without the adapter's own) into the
    shards."""
    suffix = f".{model.active_adapter}."
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(_like(weights[name.replace(suffix, ".")], p))


def load_optimizer(opt: torch.optim.Optimizer, sd: dict[str, Any]) -> None:
    """Load a state dict of whole tensors into an optimizer over sharded weights."""
    params = [p for g in opt.param_groups for p in g["params"]]
    state = {}
    for i, s in sd["state"].items():
        p = params[int(i)]
        state[i] = {k: _like(v, p) if torch.is_tensor(v) and v.dim() else v
                    for k, v in s.items()}
    opt.load_state_dict({**sd, "state": state})


@contextlib.contextmanager
def unsharded(module: Any) -> Iterator[None]:
    """The root's weights whole, for a pass that does not go through its forward
    (generating a sample); the layers gather their own as they run."""
    module.unshard()
    try:
        yield
    finally:
        module.reshard()
