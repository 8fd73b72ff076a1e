"""The frozen base model for MLX training, loaded as mlx-lm reads it — with two things added.

* **The config as transformers 5 writes it.** mlx-lm reads ``rope_theta`` / ``rope_scaling``
  at the top of ``config.json`` only; a folder saved by transformers 5 (the converted default
  model, any merged model) keeps them in ``rope_parameters``, and mlx-lm would silently build
  the model with the default rope base — a different model from the one torch evaluates.
  The rope settings are lifted to where mlx-lm looks (:func:`engine.models.rope_settings`).
* **The QLoRA base**: the model quantized with MLX once, kept in the model cache, reused by
  every run that asks for the same bits and group size.

Quantizing a 7B base takes minutes and all of its memory in full precision; a cached 4-bit copy
loads in seconds at a quarter of the size, which is what makes QLoRA fit a 16–32 GB Mac.
The folder is an mlx-lm model folder (``config.json`` with its ``quantization`` entry and
safetensors shards), written to a temporary name and renamed when complete, under a file lock
so two runs never build it twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from engine.models import cache_root, rope_settings
from engine.runs import atomic_dir

__all__ = ["config_overrides", "load_base", "quantized_base"]

_DONE = ".complete"


def config_overrides(model_dir: Path) -> dict[str, Any]:
    """Settings mlx-lm must be given explicitly to build the model the folder describes."""
    cfg = json.loads((model_dir / "config.json").read_text())
    theta, scaling = rope_settings(cfg)
    out: dict[str, Any] = {"rope_theta": theta}
    if scaling:
        out["rope_scaling"] = {k: v for k, v in scaling.items() if k != "rope_theta"}
    return out


def load_base(model_dir: Path, bits: int | None, group_size: int, cache_dir: str = ""
              ) -> tuple[Any, str]:
    """The model (quantized when ``bits`` is set) and a line saying where it came from."""
    from mlx_lm.utils import load_model

    if bits is None:
        model, _ = load_model(model_dir, model_config=config_overrides(model_dir))
        return model, f"base from {model_dir}"
    t0 = time.monotonic()
    folder, reused = quantized_base(model_dir, bits, group_size, cache_dir)
    model, _ = load_model(folder, model_config=config_overrides(model_dir))
    how = "reused from" if reused else f"in {time.monotonic() - t0:.0f} s, cached in"
    return model, (f"base quantized with MLX to {bits} bits, group size {group_size} "
                   f"(QLoRA), {how} {folder}")


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

    model, config = load_model(model_dir, lazy=True, model_config=config_overrides(model_dir))
    model, config = quantize_model(model, config, group_size, bits)
    save_model(out, model, donate_model=True)
    save_config(config, config_path=out / "config.json")
