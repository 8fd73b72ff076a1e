"""Training and evaluation backends: torch (transformers + peft) and, on Apple Silicon, MLX.

:func:`select` is the one place that decides which library, which device and which number
format, and why, for training and evaluation alike; it imports neither library unless it must
look at the hardware, so the process can say where it runs before anything heavy loads.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["Choice", "StateError", "pick_device", "select"]


class StateError(ValueError):
    """A checkpoint state file that is missing, damaged or not written by this backend."""


@dataclass(frozen=True)
class Choice:
    backend: str  # "torch" / "mlx"
    device: str  # "cpu", "cuda", "mps" (torch) or "cpu", "gpu" (mlx)
    why: str  # why this backend, in words
    precision: str = "fp32"  # "bf16", "fp16", "fp32" (torch) or "model dtype" (mlx)
    precision_why: str = ""


def pick_device(want: str = "auto") -> str:
    """The torch device: ``want`` unless it is "auto", then mps > cuda > cpu."""
    if want != "auto":
        return want
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.backends.mps.is_available():
        return "mps"
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def select(cfg: dict[str, Any], *, task: str = "train", backend: str | None = None) -> Choice:
    """The backend, device and number format for ``task`` ("train" or "eval"), each with its
    reason: what ``train.backend`` / ``train.device`` / ``train.precision`` ask for, or, on
    "auto", what this machine does best. ``backend`` names a library the caller must use (an
    HF folder is evaluated with torch whatever ``train.backend`` says)."""
    want = backend or cfg["train"]["backend"]
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    if want == "auto":
        has_mlx = importlib.util.find_spec("mlx") is not None
        backend = "mlx" if apple and has_mlx else "torch"
        why = "Apple Silicon with mlx installed" if backend == "mlx" else (
            "not Apple Silicon" if not apple else "mlx not installed")
    else:
        backend, why = want, "set in the config"
    if backend == "mlx":
        return Choice(backend, "gpu" if apple else "cpu", why, "model dtype",
                      "mlx trains in the dtype the model is stored in")
    device = pick_device(cfg["train"]["device"])
    return Choice(backend, device, why, *_torch_precision(cfg, device, task))


def _torch_precision(cfg: dict[str, Any], device: str, task: str) -> tuple[str, str]:
    if task == "eval":  # greedy answers: half precision on an accelerator, fp32 on the CPU
        return ("fp32", "evaluation on the CPU runs in fp32") if device == "cpu" else \
            ("fp16", f"evaluation on {device} runs in fp16")
    want = cfg["train"]["precision"]
    if want != "auto":
        return want, "set in the config"
    try:
        from engine.backends import precision_probe as probe
        return probe.choose(device, cfg)
    except ImportError:
        return "fp32", "torch is not installed"
