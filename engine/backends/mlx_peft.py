"""MLX LoRA weights in PEFT's layout, so stage 5 and stage 6 read MLX adapters like torch ones.

mlx-lm stores ``…q_proj.lora_a`` as (in, r) and ``lora_b`` as (r, out), with scale
alpha / r applied in the layer; peft stores ``…q_proj.lora_A.weight`` as (r, in) and
``lora_B.weight`` as (out, r) with ``lora_alpha`` in its config. Same numbers, transposed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def lora_keys(model: Any, targets: list[str]) -> set[str]:
    """Paths inside a decoder layer whose last name is one of ``targets`` (``q_proj`` →
    ``self_attn.q_proj``), the way peft matches ``target_modules``."""
    import mlx.nn as nn

    keys: set[str] = set()
    for layer in model.layers:
        for path, mod in layer.named_modules():
            if path.split(".")[-1] in targets and isinstance(mod, (nn.Linear,
                                                                   nn.QuantizedLinear)):
                keys.add(path)
    return keys


def to_peft_state(flat: dict[str, Any]) -> dict[str, np.ndarray]:
    """mlx-lm LoRA weights (``…q_proj.lora_a`` of shape (in, r), ``lora_b`` (r, out)) as peft's
    (``base_model.model.…q_proj.lora_A.weight`` (r, in), ``lora_B.weight`` (out, r))."""
    out: dict[str, np.ndarray] = {}
    for name, value in flat.items():
        stem, leaf = name.rsplit(".", 1)
        if leaf not in ("lora_a", "lora_b"):
            continue
        peft_leaf = "lora_A" if leaf == "lora_a" else "lora_B"
        out[f"base_model.model.{stem}.{peft_leaf}.weight"] = np.ascontiguousarray(
            np.asarray(value.astype(_float32())).T)
    return out


def _float32() -> Any:
    import mlx.core as mx
    return mx.float32


def peft_config(model_dir: Path, lc: dict[str, Any]) -> dict[str, Any]:
    """What ``peft``'s ``LoraConfig.save_pretrained`` writes, for the fields that matter."""
    return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "auto_mapping": None,
            "base_model_name_or_path": str(model_dir), "revision": None, "inference_mode": True,
            "r": lc["r"], "lora_alpha": lc["alpha"], "lora_dropout": lc["dropout"],
            "target_modules": sorted(lc["target_modules"]), "bias": "none",
            "fan_in_fan_out": False, "modules_to_save": None, "init_lora_weights": True,
            "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {},
            "alpha_pattern": {}, "use_rslora": False, "use_dora": False}
