"""Device and precision for torch: mps > cuda > cpu, and the fastest safe number format.

bf16 where the hardware does it natively (CUDA with bf16, recent MPS, CPUs with AVX-512 BF16
or AMX); fp16 with loss scaling on MPS without bf16; fp32 otherwise — on a CPU without bf16
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


def cpu_has_fast_bf16() -> bool:
    cap = ""
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:
        pass
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        fn = getattr(torch._C._cpu, name, None)  # type: ignore[attr-defined]
        if fn is not None:
            try:
                if fn():
                    return True
            except Exception:
                pass
    return "AMX" in cap.upper()


def place(cfg: dict[str, Any]) -> Placement:
    device = pick_device(cfg["train"]["device"])
    want = cfg["train"]["precision"]
    if device == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        auto = (torch.bfloat16, "CUDA with bf16") if bf16 else (torch.float16, "CUDA without bf16")
    elif device == "mps":
        bf16 = hasattr(torch.backends.mps, "is_macos_or_newer") and \
            torch.backends.mps.is_macos_or_newer(14, 0)
        auto = (torch.bfloat16, "MPS on macOS 14+") if bf16 else (torch.float16,
                                                                   "MPS without bf16")
    else:
        fast = cpu_has_fast_bf16()
        auto = (torch.bfloat16, "CPU with native bf16") if fast else (
            torch.float32, "CPU without native bf16 (it would be emulated)")
    if want == "auto":
        dtype, why = auto
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
