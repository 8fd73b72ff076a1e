"""Device and precision for torch: mps > cuda > cpu, and the fastest safe number format.

bf16 where the hardware does it natively and it is really faster (see
:mod:`engine.backends.precision_probe`: CPU flags, then a timed matmul cached per machine);
fp16 with loss scaling on CUDA/MPS without bf16; fp32 otherwise — on a CPU without bf16
instructions, bf16 is emulated and slower than fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from engine.backends import pick_device


@dataclass(frozen=True)
class Placement:
    device: str
    dtype: torch.dtype  # of the frozen base weights and autocast
    autocast: bool
    loss_scaling: bool
    why: str

    @property
    def precision(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[self.dtype]


def place(cfg: dict[str, Any]) -> Placement:
    from engine.backends import precision_probe as probe

    device = pick_device(cfg["train"]["device"])
    want = cfg["train"]["precision"]
    if want == "auto":
        name, why = probe.choose(device, cfg)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]
    else:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[want]
        why = "set in the config"
    return Placement(device=device, dtype=dtype, autocast=dtype != torch.float32,
                     loss_scaling=dtype == torch.float16, why=why)


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
