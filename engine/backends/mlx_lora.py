"""LoRA (and QLoRA) training with MLX + mlx-lm: the same contract as the torch trainer.

The base is loaded from the local Hugging Face folder by mlx-lm — or, for QLoRA
(``train.quantize_base`` 4 or 8 bits, ``train.quantize_group_size``), from its MLX-quantized
copy in the model cache (built once by :mod:`engine.backends.mlx_base`) — frozen, and given LoRA
layers by mlx-lm's tuner (``linear_to_lora_layers``; MLX has no alpha, so scale = alpha / r).
The loop is ours — mlx-lm's ``lora.run`` would replace our callbacks: AdamW with the torch
path's warmup + cosine schedule, gradient accumulation over ``grad_accum`` records, the
completion-only token-weighted loss from the same ``Example`` labels, gradient clipping, a
finite check every step, the same events, and atomic checkpoints holding the adapter, the
optimizer state, the step, the data position and the RNG, so a resumed run ends where an
uninterrupted one would. The final adapter is written in PEFT format (key names and layout of
``peft``'s ``save_pretrained``), so evaluation, merge and export load it like a torch one.

One record per forward (mlx-lm's models take no position ids or custom masks, so records are
not packed as on torch).
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends.mlx_base import load_base
from engine.backends.mlx_peft import lora_keys, peft_config, to_peft_state
from engine.records import Record
from engine.render import Renderer
from engine.stages.base import Cancelled, StageContext
from engine.training import checkpoint as ckpt
from engine.training.data import IGNORE, StageData
from engine.training.memory import GB, MemoryMonitor
from engine.training.plan import (
    SampleJudge,
    TrainPlan,
    TrainResult,
    example_at,
    read_resume_state,
    restore_history,
    stop_tokens,
)

log = logging.getLogger(__name__)

__all__ = ["MLXTrainer", "TrainPlan", "TrainResult", "to_peft_state", "lora_keys"]


def mlx_memory() -> tuple[float, float, float]:
    """(active, peak, cache) in GB as MLX reports them for this process."""
    import mlx.core as mx

    def read(name: str) -> float:
        fn = getattr(mx, name, None) or getattr(getattr(mx, "metal", None), name, None)
        return float(fn()) / GB if fn else 0.0

    return read("get_active_memory"), read("get_peak_memory"), read("get_cache_memory")


class MLXTrainer:
    def __init__(self, ctx: StageContext, cfg: dict[str, Any], plan: TrainPlan,
                 data: StageData, model_dir: Path, tok: Any, probes: list[Record],
                 renderer: Renderer) -> None:
        self.ctx, self.cfg, self.plan, self.data = ctx, cfg, plan, data
        self.model_dir, self.tok, self.probes, self.renderer = model_dir, tok, probes, renderer
        self.judge = SampleJudge(cfg)
        self.stage_cfg = cfg[plan.stage]
        self.learning_rate = float(self.stage_cfg.get("learning_rate",
                                                      cfg["train"]["learning_rate"]))
        n = len(data.examples)
        if plan.max_steps is not None:
            self.total_steps = plan.max_steps
        else:
            self.total_steps = max(1, math.ceil(n * plan.epochs / plan.grad_accum))
        import mlx.core as mx
        self.device = str(mx.default_device()).replace("Device(", "").split(",")[0]
        q = str(cfg["train"].get("quantize_base", "off"))
        self.quantize_bits = None if q == "off" else int(q)
        self.group_size = int(cfg["train"].get("quantize_group_size", 64))
        base = "fp32" if self.quantize_bits is None else f"{self.quantize_bits}-bit"
        self.result = TrainResult(status="ok", total_steps=self.total_steps,
                                  placement=f"mlx-{self.device}/{base}")

    # -- data order (the same as the torch trainer's) -----------------------------------------
    def example_at(self, micro: int) -> int:
        return example_at(self.cfg["run"]["seed"], self.plan.stage, len(self.data.examples),
                          micro)

    @property
    def scale(self) -> float:
        return float(self.cfg["lora"]["alpha"]) / float(self.cfg["lora"]["r"])

    def train_settings(self) -> dict[str, Any]:
        c, s = self.cfg, self.stage_cfg
        return {"model.id": c["model"]["id"], "lora.r": c["lora"]["r"],
                "lora.alpha": c["lora"]["alpha"], "lora.dropout": c["lora"]["dropout"],
                "lora.target_modules": list(c["lora"]["target_modules"]),
                "learning_rate": self.learning_rate,
                "stage.grad_accum": self.plan.grad_accum, "stage.seq_len": s["seq_len"],
                "stage.epochs": self.plan.epochs, "stage.max_steps": self.plan.max_steps,
                "data.train": list(c["data"]["train"]), "run.seed": c["run"]["seed"],
                "train.backend": "mlx", "train.quantize_base": str(self.quantize_bits or "off"),
                "train.quantize_group_size": self.group_size}

    # -- model --------------------------------------------------------------------------------
    def load_model(self) -> Any:
        import mlx.core as mx
        from mlx_lm.tuner.utils import linear_to_lora_layers
        model, origin = load_base(Path(self.model_dir), self.quantize_bits, self.group_size,
                                  self.cfg["model"]["cache_dir"])
        self.ctx.emit("log", level="info", message=origin)
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
        self.ctx.emit("log", level="info", message=(
            f"LoRA with mlx-lm: r={lc['r']}, scale = alpha / r = {lc['alpha']}/{lc['r']} = "
            f"{self.scale:g} (MLX has no alpha), dropout {lc['dropout']}, on "
            f"{', '.join(sorted(keys))} in all {len(model.layers)} layers"))
        return model

    # -- loss ---------------------------------------------------------------------------------
    @staticmethod
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

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        import mlx.core as mx
        import mlx.nn as nn
        import mlx.optimizers as optim
        from mlx.utils import tree_map

        ctx, cfg, plan, res = self.ctx, self.cfg, self.plan, self.result
        tc = cfg["train"]
        random.seed(cfg["run"]["seed"])
        ctx.emit("log", level="info", message=(
            f"training {plan.stage} with MLX on {self.device} ({res.placement}); "
            f"{len(self.data.examples)} records, {self.total_steps} steps of {plan.grad_accum}"))
        model = self.load_model()
        opt = optim.AdamW(learning_rate=self.learning_rate, betas=[0.9, 0.999], eps=1e-8,
                          weight_decay=float(tc["weight_decay"]), bias_correction=True)
        opt.init(model.trainable_parameters())
        warm = max(1, int(self.total_steps * tc["warmup_ratio"]))
        floor = tc["min_lr_ratio"]

        def lr_at(step: int) -> float:  # the torch path's LambdaLR factor, times the peak
            if step < warm:
                f = (step + 1) / warm
            else:
                t = (step - warm) / max(1, self.total_steps - warm)
                f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
            return self.learning_rate * f

        def loss_fn(m: Any, ids: Any, target: Any, where: Any, denom: Any) -> Any:
            logits = self._forward_where(m, ids, where).astype(mx.float32)
            return nn.losses.cross_entropy(logits, target, reduction="sum") / denom

        loss_and_grad = nn.value_and_grad(model, loss_fn)

        def reader() -> tuple[float, float]:
            active, peak, _cache = mlx_memory()
            return active, peak

        monitor = MemoryMonitor(cfg, reader)
        res.budget_gb = monitor.budget
        step = self._resume(model, opt)
        examples = self.data.examples
        started = time.monotonic()
        model.train()
        while step < self.total_steps:
            if ctx.stop_requested():
                self._save(model, opt, step)
                res.status = "cancelled"
                raise Cancelled()
            t0 = time.monotonic()
            # Dropout draws from a key that depends only on the seed and the step: a resumed
            # run draws exactly what an uninterrupted one would.
            mx.random.seed(int(cfg["run"]["seed"]) * 1_000_003 + step)
            idx = [self.example_at(step * plan.grad_accum + k) for k in range(plan.grad_accum)]
            window = [examples[i] for i in idx]
            window_trained = sum(e.trained_tokens for e in window)
            denom = mx.array(float(max(1, window_trained)))
            try:
                grads = None
                step_loss = mx.array(0.0)
                step_tokens = 0
                for e in window:
                    labels = np.asarray(e.labels[1:])
                    where = np.nonzero(labels != IGNORE)[0]
                    if where.size == 0:
                        step_tokens += len(e.input_ids)
                        continue
                    loss, g = loss_and_grad(model, mx.array(e.input_ids[:-1]),
                                            mx.array(labels[where]), mx.array(where), denom)
                    grads = g if grads is None else tree_map(mx.add, grads, g)
                    step_loss = step_loss + loss
                    step_tokens += len(e.input_ids)
                if grads is None:
                    grads = tree_map(mx.zeros_like, model.trainable_parameters())
                grads, gnorm = optim.clip_grad_norm(grads, float(tc["max_grad_norm"]))
                mx.eval(step_loss, gnorm, grads)
                loss_v, gnorm_v = float(step_loss.item()), float(gnorm.item())
            except (RuntimeError, MemoryError, ValueError) as exc:
                log.exception("device error at step %s", step + 1)
                res.device_error = f"{type(exc).__name__}: {exc}"
                ctx.emit("error", message=f"device error at step {step + 1}: {exc}", detail=None,
                         hint="Lower the stage's seq_len or use train.quantize_base = \"4\".")
                res.status = "failed"
                break
            if not (math.isfinite(loss_v) and math.isfinite(gnorm_v)):
                res.nan_step = step + 1
                ctx.emit("error", message=f"non-finite {'loss' if not math.isfinite(loss_v) else 'gradient norm'} "
                         f"at step {step + 1} (loss {loss_v}, grad norm {gnorm_v}); training "
                         "stopped, the last good checkpoint is kept",
                         detail=None, hint="Lower train.learning_rate or check the data for "
                                           "broken records; resume from the last checkpoint.")
                res.status = "failed"
                break
            lr = lr_at(step)
            opt.learning_rate = lr
            opt.update(model, grads)
            mx.eval(model.trainable_parameters(), opt.state)
            step += 1
            dt = time.monotonic() - t0
            res.losses.append(loss_v)
            res.grad_norms.append(gnorm_v)
            res.tokens += step_tokens
            res.seconds += dt
            ctx.emit("metric", step=step, values={
                "loss": round(loss_v, 5), "lr": lr, "grad_norm": round(gnorm_v, 5),
                "tokens_per_s": round(step_tokens / dt, 1) if dt else None,
                "trained_tokens": window_trained})
            elapsed = time.monotonic() - started
            per_step = elapsed / max(1, step - (res.resumed_from or 0))
            ctx.emit("progress", done=step, total=self.total_steps, unit="steps",
                     eta_s=round(per_step * (self.total_steps - step), 1))
            if step % tc["memory_every"] == 0 or step == 1:
                s = monitor.sample()
                ctx.emit("memory", **s.payload(), device_cache_gb=round(mlx_memory()[2], 3))
                if monitor.over_hard_limit(s):
                    res.memory_stop = (f"{s.used_gb:.1f} GB used, over the hard limit of "
                                       f"{monitor.hard:.1f} GB")
                    self._save(model, opt, step)
                    ctx.emit("error", message=f"memory: {res.memory_stop}; stopped with a "
                             "checkpoint before the system runs out",
                             detail=None, hint="Lower the stage's seq_len, set "
                             "train.quantize_base = \"4\" or raise memory.budget_gb.")
                    res.status = "failed"
                    break
            if step % tc["sample_every"] == 0:
                self.samples(model, step)
            if step % tc["checkpoint_every"] == 0:
                self._save(model, opt, step)
            if plan.stop_when is not None and plan.stop_when(res.losses):
                ctx.emit("log", level="info", message=f"target reached at step {step}")
                break
        res.steps = step
        res.peak_memory_gb = max(monitor.peak_used, monitor.sample().used_gb)
        if res.status == "ok":
            self.samples(model, step)
            self._save(model, opt, step)
            self._save_adapter(model)
        return res

    # -- samples ------------------------------------------------------------------------------
    def samples(self, model: Any, step: int) -> None:
        if not self.probes:
            return
        import mlx.core as mx
        from mlx_lm.models.cache import make_prompt_cache

        model.eval()
        eos = {self.tok.convert_tokens_to_ids(t) for t in stop_tokens(self.tok)}
        try:
            for rec in self.probes:
                prompt = self.renderer.render(rec).prompt
                ids = self.tok(prompt, add_special_tokens=False).input_ids
                cache = make_prompt_cache(model)
                logits = model(mx.array(ids)[None], cache=cache)
                out: list[int] = []
                for _ in range(self.cfg["train"]["sample_max_tokens"]):
                    nxt = int(mx.argmax(logits[0, -1]).item())
                    if nxt in eos:
                        break
                    out.append(nxt)
                    logits = model(mx.array([[nxt]]), cache=cache)
                answer = self.tok.decode(out, skip_special_tokens=True).strip()
                v = self.judge(rec, answer)
                sample = {"step": step, "bucket": rec.bucket, "prompt": rec.user_text,
                          "output": answer, "verdict": v}
                self.result.samples.append(sample)
                self.ctx.emit("sample", **sample)
        finally:
            model.train()


    # -- checkpoints --------------------------------------------------------------------------
    def _save(self, model: Any, opt: Any, step: int) -> None:
        if step == 0:
            return
        import mlx.core as mx
        from mlx.utils import tree_flatten

        root = self.plan.checkpoint_root
        with ckpt.saving(root, step, self.cfg["train"]["keep_checkpoints"]) as tmp:
            mx.save_safetensors(str(tmp / "adapters.safetensors"),
                                dict(tree_flatten(model.trainable_parameters())))
            opt_state = dict(tree_flatten(opt.state))
            mx.save_safetensors(str(tmp / "optimizer.safetensors"),
                                {k: v for k, v in opt_state.items() if isinstance(v, mx.array)})
            (tmp / "rng.json").write_text(json.dumps({
                "python": _jsonable(random.getstate()),
                "mlx_key": np.asarray(mx.random.state[0]).tolist(),  # for the record
                "mlx_seed_per_step": f"{self.cfg['run']['seed']} * 1000003 + step"}))
            ckpt.write_state(tmp, {
                "step": step, "total_steps": self.total_steps, "stage": self.plan.stage,
                "backend": "mlx", "micro_batches_done": step * self.plan.grad_accum,
                "losses": self.result.losses, "grad_norms": self.result.grad_norms,
                "tokens": self.result.tokens, "seconds": self.result.seconds,
                "settings": self.train_settings(), "time": time.time()})
        final = ckpt.step_dir(root, step)
        self.ctx.emit("artifact", kind="checkpoint", path=str(final))

    def _resume(self, model: Any, opt: Any) -> int:
        import mlx.core as mx
        from mlx.utils import tree_unflatten

        root = self.plan.checkpoint_root
        if not self.plan.resume:
            aside = ckpt.set_aside(root)
            if aside:
                self.ctx.emit("log", level="info", message=(
                    f"starting {self.plan.stage} over; earlier checkpoints kept in {aside}"))
            return 0
        last = ckpt.latest(root, warn=lambda m: self.ctx.emit("log", level="warning", message=m))
        if last is None:
            self.ctx.emit("log", level="warning",
                          message=f"no checkpoint of {self.plan.stage} to resume; starting fresh")
            return 0
        if not (last / "adapters.safetensors").exists():
            raise ValueError(f"checkpoint {last} was not written by the mlx backend; resume "
                             "it with train.backend = \"torch\"")
        ckpt.check_loadable(last)
        state = read_resume_state(self.ctx, last, self.train_settings())
        try:  # safetensors and JSON only: nothing in a checkpoint can run code
            model.load_weights(list(mx.load(str(last / "adapters.safetensors")).items()),
                               strict=False)
            opt.state = tree_unflatten(list(mx.load(str(last / "optimizer.safetensors")).items()))
            rng = json.loads((last / "rng.json").read_bytes().decode("utf-8"))
            random.setstate(_tuplify(rng["python"]))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, RecursionError) as exc:
            raise ckpt.CheckpointError(f"cannot resume from {last}: {type(exc).__name__}: "
                                       f"{str(exc)[:120]}") from None
        # MLX's key cannot be set back (``mx.random.state`` is read-only); it needs no
        # restoring: the loop reseeds it from (seed, step) before each step's draws.
        mx.eval(model.parameters(), opt.state)
        return restore_history(self.ctx, self.result, state, self.plan.stage, last,
                               self.total_steps)

    # -- the final adapter, in PEFT format ----------------------------------------------------
    def _save_adapter(self, model: Any) -> None:
        from mlx.utils import tree_flatten
        from safetensors.numpy import save_file

        out = self.plan.adapter_dir
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        weights = to_peft_state(dict(tree_flatten(model.trainable_parameters())))
        save_file(weights, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        lc = self.cfg["lora"]
        (tmp / "adapter_config.json").write_text(json.dumps(peft_config(self.model_dir, lc), indent=2))
        (tmp / "web4tui-backend.json").write_text(json.dumps({
            "backend": "mlx", "scale": self.scale, "quantize_base": str(self.quantize_bits or "off"),
            "quantize_group_size": self.group_size}, indent=2))
        if self.ctx.run_dir is not None and (Path(self.ctx.run_dir) / "config.toml").exists():
            shutil.copy(Path(self.ctx.run_dir) / "config.toml", tmp / "web4tui-config.toml")
        self.tok.save_pretrained(tmp)
        ckpt.swap_in(tmp, out)
        note = "" if self.quantize_bits is None else (
            f" (trained on a {self.quantize_bits}-bit MLX base; it applies to the full-precision"
            " base, which differs from the quantized one by the quantization error)")
        self.ctx.emit("log", level="info", message=f"adapter saved in PEFT format{note}")
        self.ctx.emit("artifact", kind="adapter", path=str(out))


def _jsonable(state: Any) -> Any:
    return [_jsonable(s) for s in state] if isinstance(state, tuple) else state


def _tuplify(state: Any) -> Any:
    return tuple(_tuplify(s) for s in state) if isinstance(state, list) else state
