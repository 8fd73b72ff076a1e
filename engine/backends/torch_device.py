"""What torch trains with, as :func:`engine.backends.select` chose it: the device, and the
number format as a torch dtype with autocast and loss scaling.

bf16 where the hardware does it natively and it is really faster (see
:mod:`engine.backends.precision_probe`: CPU flags, then a timed matmul cached per machine);
fp16 with loss scaling on CUDA/MPS without bf16; fp32 otherwise — on a CPU without bf16
instructions, bf16 is emulated and slower than fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from engine.backends import Choice, select

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class Placement:
    device: str
    dtype: torch.dtype  # of the frozen base weights and autocast
    autocast: bool
    loss_scaling: bool
    why: str

    @property
    def precision(self) -> str:
        return {dtype: name for name, dtype in DTYPES.items()}[self.dtype]


def place(cfg: dict[str, Any], choice: Choice | None = None) -> Placement:
    """Training's placement, from ``choice`` (or :func:`select` for torch on ``cfg``)."""
    choice = choice or select(cfg, backend="torch")
    dtype = DTYPES[choice.precision]
    return Placement(device=choice.device, dtype=dtype, autocast=dtype != torch.float32,
                     loss_scaling=dtype == torch.float16, why=choice.precision_why)


def memory_reader(device: str):
    """(current GB, peak GB) of device memory, read inside the training process."""
    gb = 1024 ** 3

    def cuda() -> tuple[float, float]:
        return torch.cuda.memory_allocated() / gb, torch.cuda.max_memory_allocated() / gb

    peak = [0.0]

    def mps() -> tuple[float, float]:
        # Driver-allocated, not just tensors: it is what macOS counts against the machine.
        drv = torch.mps.driver_allocated_memory() / gb
        peak[0] = max(peak[0], drv)
        return drv, peak[0]

    return {"cuda": cuda, "mps": mps}.get(device, lambda: (0.0, 0.0))


def explain_device_error(exc: BaseException, device: str) -> str:
    text = str(exc)
    if "out of memory" in text.lower() or isinstance(exc, torch.cuda.OutOfMemoryError):
        return ("The device ran out of memory: lower the stage's seq_len, enable "
                "train.gradient_checkpointing, or use a smaller model.")
    if device == "mps" and ("not implemented" in text.lower() or "MPS" in text):
        return ("An operation is missing on MPS: set PYTORCH_ENABLE_MPS_FALLBACK=1 to run it on "
                "the CPU, or set train.device=\"cpu\".")
    if device == "cuda":
        return "A CUDA error: check the driver with nvidia-smi, or set train.device=\"cpu\"."
    return "See engine.log in the run folder for the full traceback."
