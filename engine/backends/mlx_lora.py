"""LoRA (and QLoRA) training with MLX + mlx-lm: the same contract as the torch trainer.

The base is loaded from the local Hugging Face folder by mlx-lm — or, for QLoRA
(``train.quantize_base`` 4 or 8 bits, ``train.quantize_group_size``), from its MLX-quantized
copy in the model cache (built once by :mod:`engine.backends.mlx_base`) — frozen, and given LoRA
layers by mlx-lm's tuner (``linear_to_lora_layers``; MLX has no alpha, so scale = alpha / r).
The loop is the one both backends share (:mod:`engine.training.loop`; mlx-lm's ``lora.run``
would replace its events): this module gives it AdamW, gradient accumulation over
``grad_accum`` records with the completion-only token-weighted loss from the same ``Example``
labels, gradient clipping, and checkpoint state holding the adapter, the optimizer state and
the RNG as safetensors + JSON, so a resumed run ends where an uninterrupted one would. The
final adapter is written in PEFT format (key names and layout of
``peft``'s ``save_pretrained``), so evaluation, merge and export load it like a torch one.

One record per forward (mlx-lm's models take no position ids or custom masks, so records are
not packed as on torch).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.backends import StateError
from engine.backends.mlx_base import load_base
from engine.backends.mlx_peft import lora_keys, peft_config, to_peft_state
from engine.examples import IGNORE, Example

__all__ = ["MLXLoRA", "lora_keys", "to_peft_state"]

GB = 1024 ** 3


def mlx_memory() -> tuple[float, float, float]:
    """(active, peak, cache) in GB as MLX reports them for this process."""
    import mlx.core as mx

    def read(name: str) -> float:
        fn = getattr(mx, name, None) or getattr(getattr(mx, "metal", None), name, None)
        return float(fn()) / GB if fn else 0.0

    return read("get_active_memory"), read("get_peak_memory"), read("get_cache_memory")


class MLXLoRA:
    """The MLX backend of :class:`engine.training.loop.Backend`."""

    name = "mlx"
    memory_hint = ("Lower the stage's seq_len, set train.quantize_base = \"4\" or raise "
                   "memory.budget_gb.")
    device_errors = (RuntimeError, MemoryError, ValueError)

    def __init__(self, cfg: dict[str, Any], model_dir: Path, tok: Any, emit: Any) -> None:
        import mlx.core as mx

        self.cfg, self.model_dir, self.tok, self.emit = cfg, Path(model_dir), tok, emit
        self.device = str(mx.default_device()).replace("Device(", "").split(",")[0]
        q = str(cfg["train"].get("quantize_base", "off"))
        self.quantize_bits = None if q == "off" else int(q)
        self.group_size = int(cfg["train"].get("quantize_group_size", 64))
        base = "fp32" if self.quantize_bits is None else f"{self.quantize_bits}-bit"
        self.placement = f"mlx-{self.device}/{base}"
        self.model: Any = None

    @property
    def scale(self) -> float:
        return float(self.cfg["lora"]["alpha"]) / float(self.cfg["lora"]["r"])

    def describe(self) -> str:
        return f"with MLX on {self.device} ({self.placement})"

    def settings(self) -> dict[str, Any]:
        return {"train.backend": "mlx", "train.quantize_base": str(self.quantize_bits or "off"),
                "train.quantize_group_size": self.group_size}

    # -- model --------------------------------------------------------------------------------
    def load(self, learning_rate: float) -> None:
        import mlx.core as mx
        import mlx.nn as nn
        import mlx.optimizers as optim
        from mlx_lm.tuner.utils import linear_to_lora_layers

        model, origin = load_base(self.model_dir, self.quantize_bits, self.group_size,
                                  self.cfg["model"]["cache_dir"])
        self.emit("log", level="info", message=origin)
        model.freeze()
        lc = self.cfg["lora"]
        targets = list(lc["target_modules"])
        keys = lora_keys(model, targets)
        if not keys:
            raise ValueError(f"none of lora.target_modules {targets} is a linear layer of "
                             f"{self.model_dir.name}")
        # LoRA layers are created from mx.random: seeded, so every run starts from the same A.
        mx.random.seed(int(self.cfg["run"]["seed"]))
        linear_to_lora_layers(model, len(model.layers),
                              {"rank": lc["r"], "scale": self.scale,
                               "dropout": lc["dropout"], "keys": sorted(keys)})
        mx.eval(model.parameters())
        self.emit("log", level="info", message=(
            f"LoRA with mlx-lm: r={lc['r']}, scale = alpha / r = {lc['alpha']}/{lc['r']} = "
            f"{self.scale:g} (MLX has no alpha), dropout {lc['dropout']}, on "
            f"{', '.join(sorted(keys))} in all {len(model.layers)} layers"))
        self.model = model
        self.opt = optim.AdamW(learning_rate=learning_rate, betas=[0.9, 0.999], eps=1e-8,
                               weight_decay=float(self.cfg["train"]["weight_decay"]),
                               bias_correction=True)
        self.opt.init(model.trainable_parameters())

        def loss_fn(m: Any, ids: Any, target: Any, where: Any, denom: Any) -> Any:
            logits = _forward_where(m, ids, where).astype(mx.float32)
            return nn.losses.cross_entropy(logits, target, reduction="sum") / denom

        self.loss_and_grad = nn.value_and_grad(model, loss_fn)
        model.train()

    # -- a step -------------------------------------------------------------------------------
    def step(self, window: Sequence[Example], step: int, trained_tokens: int
             ) -> tuple[float, float, int]:
        import mlx.core as mx
        import mlx.optimizers as optim
        from mlx.utils import tree_map

        # Dropout draws from a key that depends only on the seed and the step: a resumed
        # run draws exactly what an uninterrupted one would.
        mx.random.seed(int(self.cfg["run"]["seed"]) * 1_000_003 + step)
        denom = mx.array(float(max(1, trained_tokens)))
        grads = None
        step_loss = mx.array(0.0)
        for e in window:  # one record per forward: mlx-lm's models take no packing
            labels = np.asarray(e.labels[1:])
            where = np.nonzero(labels != IGNORE)[0]
            if where.size == 0:
                continue
            loss, g = self.loss_and_grad(self.model, mx.array(e.input_ids[:-1]),
                                         mx.array(labels[where]), mx.array(where), denom)
            grads = g if grads is None else tree_map(mx.add, grads, g)
            step_loss = step_loss + loss
        if grads is None:
            grads = tree_map(mx.zeros_like, self.model.trainable_parameters())
        grads, gnorm = optim.clip_grad_norm(grads, float(self.cfg["train"]["max_grad_norm"]))
        mx.eval(step_loss, gnorm, grads)
        self.grads = grads
        return (float(step_loss.item()), float(gnorm.item()),
                sum(len(e.input_ids) for e in window))

    def apply(self, lr: float) -> None:
        import mlx.core as mx

        self.opt.learning_rate = lr
        self.opt.update(self.model, self.grads)
        self.grads = None
        mx.eval(self.model.trainable_parameters(), self.opt.state)

    def memory(self) -> tuple[float, float]:
        active, peak, _cache = mlx_memory()
        return active, peak

    def memory_extras(self) -> dict[str, Any]:
        return {"device_cache_gb": round(mlx_memory()[2], 3)}

    def device_hint(self, exc: BaseException) -> str:
        return "Lower the stage's seq_len or use train.quantize_base = \"4\"."

    # -- state --------------------------------------------------------------------------------
    def save_state(self, folder: Path) -> None:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        mx.save_safetensors(str(folder / "adapters.safetensors"),
                            dict(tree_flatten(self.model.trainable_parameters())))
        opt_state = dict(tree_flatten(self.opt.state))
        mx.save_safetensors(str(folder / "optimizer.safetensors"),
                            {k: v for k, v in opt_state.items() if isinstance(v, mx.array)})
        (folder / "rng.json").write_text(json.dumps({
            "python": _jsonable(random.getstate()),
            "mlx_key": np.asarray(mx.random.state[0]).tolist(),  # for the record
            "mlx_seed_per_step": f"{self.cfg['run']['seed']} * 1000003 + step"}))

    def load_state(self, folder: Path) -> None:
        import mlx.core as mx
        from mlx.utils import tree_unflatten

        if not (folder / "adapters.safetensors").exists():
            raise StateError(f"checkpoint {folder} was not written by the mlx backend; resume "
                             "it with train.backend = \"torch\"")
        try:  # safetensors and JSON only: nothing in a checkpoint can run code
            self.model.load_weights(list(mx.load(str(folder / "adapters.safetensors")).items()),
                                    strict=False)
            self.opt.state = tree_unflatten(
                list(mx.load(str(folder / "optimizer.safetensors")).items()))
            rng = json.loads((folder / "rng.json").read_bytes().decode("utf-8"))
            random.setstate(_tuplify(rng["python"]))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, RecursionError) as exc:
            raise StateError(f"cannot resume from {folder}: {type(exc).__name__}: "
                             f"{str(exc)[:120]}") from None
        # MLX's key cannot be set back (``mx.random.state`` is read-only); it needs no
        # restoring: each step reseeds it from (seed, step) before its draws.
        mx.eval(self.model.parameters(), self.opt.state)

    # -- samples and the final adapter, in PEFT format ----------------------------------------
    def generate(self, prompt: str, max_new_tokens: int, stops: list[str]) -> str:
        import mlx.core as mx
        from mlx_lm.models.cache import make_prompt_cache

        eos = {self.tok.convert_tokens_to_ids(t) for t in stops}
        ids = self.tok(prompt, add_special_tokens=False).input_ids
        self.model.eval()
        try:
            cache = make_prompt_cache(self.model)
            logits = self.model(mx.array(ids)[None], cache=cache)
            out: list[int] = []
            for _ in range(max_new_tokens):
                nxt = int(mx.argmax(logits[0, -1]).item())
                if nxt in eos:
                    break
                out.append(nxt)
                logits = self.model(mx.array([[nxt]]), cache=cache)
        finally:
            self.model.train()
        return self.tok.decode(out, skip_special_tokens=True).strip()

    def save_adapter(self, folder: Path) -> str | None:
        from mlx.utils import tree_flatten
        from safetensors.numpy import save_file

        weights = to_peft_state(dict(tree_flatten(self.model.trainable_parameters())))
        save_file(weights, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
        (folder / "adapter_config.json").write_text(
            json.dumps(peft_config(self.model_dir, self.cfg["lora"]), indent=2))
        (folder / "web4tui-backend.json").write_text(json.dumps({
            "backend": "mlx", "scale": self.scale,
            "quantize_base": str(self.quantize_bits or "off"),
            "quantize_group_size": self.group_size}, indent=2))
        note = "" if self.quantize_bits is None else (
            f" (trained on a {self.quantize_bits}-bit MLX base; it applies to the full-precision"
            " base, which differs from the quantized one by the quantization error)")
        return f"adapter saved in PEFT format{note}"


def _forward_where(model: Any, ids: Any, where: Any) -> Any:
    """Logits only at the positions in ``where`` when the model's layout is the usual
    ``model.model`` + (``lm_head`` | tied embeddings); the full logits otherwise."""
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "embed_tokens"):
        hidden = inner(ids[None])[0][where]
        if getattr(model, "lm_head", None) is not None and \
                not getattr(getattr(model, "args", None), "tie_word_embeddings", False):
            return model.lm_head(hidden)
        return inner.embed_tokens.as_linear(hidden)
    return model(ids[None])[0][where]


def _jsonable(state: Any) -> Any:
    return [_jsonable(s) for s in state] if isinstance(state, tuple) else state


def _tuplify(state: Any) -> Any:
    return tuple(_tuplify(s) for s in state) if isinstance(state, list) else state
