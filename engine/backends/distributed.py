"""How many training processes a stage runs, and what one of them knows about the others.

``train.processes`` above 1 runs the training loop under ``torch.distributed.run`` (see
:mod:`engine.training.ranks` for the launch), one process per CUDA device (nccl) or, on a
CPU, several processes sharing it (gloo). Inside each process a :class:`World` says which
share of every optimizer step's records is its own and makes the decisions every process
must take alike (stop now, stop on memory) from what all of them saw. The single-process
world needs no torch: the MLX path never loads it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

__all__ = ["SINGLE", "World", "WorldError", "join", "processes"]

T = TypeVar("T")


class WorldError(ValueError):
    """A ``train.processes`` / ``train.strategy`` this machine cannot do."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None  # "gloo" / "nccl"; None for one process
    strategy: str = "ddp"

    @property
    def main(self) -> bool:
        """The process that writes events, state, checkpoints and the adapter."""
        return self.rank == 0

    def share(self, window: Sequence[T]) -> list[T]:
        """This process's records of one optimizer step: every size-th, from its rank. The
        step stays the whole window — the global batch is the same whatever the size."""
        return list(window[self.rank::self.size])

    def agree(self, flag: bool) -> bool:
        """True on every process when it is true on any (a stop seen by one is a stop)."""
        if self.size == 1:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on every process."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def _device(self) -> str:
        return "cuda" if self.backend == "nccl" else "cpu"


SINGLE = World()


def processes(cfg: dict[str, Any], backend: str, device: str) -> tuple[int, str]:
    """(number of training processes, why) for ``train.processes`` on this backend/device."""
    want = cfg["train"]["processes"]
    if backend != "torch" or device == "mps":
        where = "MLX" if backend != "torch" else "MPS"
        return 1, (f"{where} trains in one process" if want not in ("auto", 1)
                   else "one process")
    if device == "cuda":
        import torch

        count = torch.cuda.device_count()
        if want == "auto":
            return max(1, count), f"one per CUDA device ({count})"
        if int(want) > count:
            raise WorldError(f"train.processes = {want} but this machine has {count} CUDA "
                             f"device(s); set train.processes = \"auto\" or at most {count}")
        return int(want), "set in the config"
    if want == "auto":
        return 1, "one process on a CPU (set train.processes to share it)"
    return int(want), "set in the config (CPU processes share its cores)"


def transport(device: str) -> str:
    """What the processes exchange gradients over: nccl between CUDA devices, else gloo."""
    return "nccl" if device == "cuda" else "gloo"


def header(cfg: dict[str, Any], backend: str, device: str) -> dict[str, Any]:
    """The run header's fields on training processes: launcher, world size, how they talk,
    and the devices (a count this machine cannot do is the training stage's error)."""
    try:
        n, _why = processes(cfg, backend, device)
    except WorldError:
        n = 1
    if n == 1:
        return {"launcher": None, "world_size": 1, "dist_backend": None, "devices": [device]}
    devices = [f"cuda:{i}" for i in range(n)] if device == "cuda" else [device] * n
    return {"launcher": "torch.distributed.run", "world_size": n,
            "dist_backend": transport(device), "devices": devices}


def join(cfg: dict[str, Any]) -> World:
    """Inside a process started by torch.distributed.run: join the others (gloo on a CPU,
    nccl on CUDA), with the exchange timeout from ``train.collective_timeout_s``."""
    import torch
    import torch.distributed as dist

    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    from engine.backends import pick_device

    cuda = pick_device(cfg["train"]["device"]) == "cuda"
    backend = transport("cuda" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(local)
    timeout = datetime.timedelta(seconds=float(cfg["train"]["collective_timeout_s"]))
    dist.init_process_group(backend, timeout=timeout,
                            device_id=torch.device("cuda", local) if cuda else None)
    return World(rank=rank, size=size, local_rank=local, backend=backend,
                 strategy=cfg["train"]["strategy"])


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
