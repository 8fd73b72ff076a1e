"""Training and evaluation backends: torch (transformers + peft) and, on Apple Silicon, MLX.

:func:`select` is the one place that decides which library, which device and why, for training
and evaluation alike; it imports neither library unless it must look at the hardware, so the
process can say where it runs before anything heavy loads. Precision is decided per library
once the device is known (:func:`engine.backends.torch_device.place` for torch).
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


def select(cfg: dict[str, Any]) -> Choice:
    """The backend and device ``train.backend`` / ``train.device`` ask for, with the reason."""
    want = cfg["train"]["backend"]
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    if want == "auto":
        has_mlx = importlib.util.find_spec("mlx") is not None
        backend = "mlx" if apple and has_mlx else "torch"
        why = "Apple Silicon with mlx installed" if backend == "mlx" else (
            "not Apple Silicon" if not apple else "mlx not installed")
    else:
        backend, why = want, "set in the config"
    if backend == "mlx":
        return Choice(backend, "gpu" if apple else "cpu", why)
    return Choice(backend, pick_device(cfg["train"]["device"]), why)
