"""The QLoRA base: the model quantized with MLX once, kept in the model cache, reused by every
run that asks for the same bits and group size.

Quantizing a 7B base takes minutes and all of its memory in full precision; a cached 4-bit copy
loads in seconds at a quarter of the size, which is what makes QLoRA fit a 16–32 GB Mac.
The folder is an mlx-lm model folder (``config.json`` with its ``quantization`` entry and
safetensors shards), written to a temporary name and renamed when complete, under a file lock
so two runs never build it twice.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from engine.models import cache_root
from engine.runs import atomic_dir

__all__ = ["quantized_base"]

_DONE = ".complete"


def _fingerprint(model_dir: Path) -> str:
    """Changes when the base's config or weights change (name, size and time of each file)."""
    h = hashlib.sha256(str(model_dir.resolve()).encode())
    for p in sorted(model_dir.glob("*.safetensors")) + [model_dir / "config.json"]:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


def quantized_base(model_dir: Path, bits: int, group_size: int, cache_dir: str = ""
                   ) -> tuple[Path, bool]:
    """The cached MLX-quantized copy of ``model_dir``: (folder, whether it was already there)."""
    from filelock import FileLock

    root = cache_root(cache_dir)
    target = root / f"{model_dir.name}-mlx-q{bits}-g{group_size}-{_fingerprint(model_dir)}"
    if (target / _DONE).exists():
        return target, True
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=3600):
        if (target / _DONE).exists():  # another run built it while we waited
            return target, True
        with atomic_dir(target) as tmp:
            _build(model_dir, bits, group_size, tmp)
            (tmp / _DONE).write_text(f"{model_dir}\n")
    return target, False


def _build(model_dir: Path, bits: int, group_size: int, out: Path) -> None:
    from mlx_lm.utils import load_model, quantize_model, save_config, save_model

    model, config = load_model(model_dir, lazy=True)
    model, config = quantize_model(model, config, group_size, bits)
    save_model(out, model, donate_model=True)
    save_config(_plain(config), config_path=out / "config.json")


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """mlx-lm's config may carry non-JSON entries (none today); keep what JSON can hold."""
    return {k: v for k, v in config.items() if isinstance(
        v, (str, int, float, bool, list, dict, type(None)))}
