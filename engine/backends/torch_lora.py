"""LoRA training with transformers + peft: the loop, its checkpoints, and nothing else.

One optimizer step = ``grad_accum`` records (batch 1, no padding). What makes it fast here:
the step's records packed into few sequences whose shared prompt prefix runs once
(:mod:`engine.training.packing`, attended piece by piece by
:mod:`engine.backends.torch_attention`), the frozen base in the device's fast precision,
logits computed only where the loss is (completion tokens — the vocabulary projection of
prompt tokens is a large share of the work for a small model with a large vocabulary), a
token-weighted loss with a single host sync per optimizer step. What makes it safe: finite
checks on loss and gradient norm every step, memory read every few steps, atomic checkpoints
with everything needed to resume exactly.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from engine.backends import torch_attention, torch_state
from engine.backends.torch_device import (
    Placement,
    explain_device_error,
    memory_reader,
    place,
)
from engine.records import Record
from engine.render import Renderer
from engine.stages.base import Cancelled, StageContext
from engine.training import checkpoint as ckpt
from engine.training.data import IGNORE, StageData
from engine.training.memory import MemoryMonitor
from engine.training.packing import Packed, pack_window
from engine.training.plan import (
    SampleJudge,
    TrainPlan,
    TrainResult,
    example_at,
    read_resume_state,
    restore_history,
    stop_tokens,
)

__all__ = ["TorchTrainer", "TrainPlan", "TrainResult", "completion_loss", "load_model"]

log = logging.getLogger(__name__)

def load_model(model_dir: Path, cfg: dict[str, Any], placement: Placement) -> Any:
    """The base model, frozen, in the placement's dtype, with LoRA adapters in fp32."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=placement.dtype, trust_remote_code=cfg["model"]["trust_remote_code"],
        attn_implementation=torch_attention.register())
    base.to(placement.device)
    base.config.use_cache = False
    if cfg["train"]["gradient_checkpointing"]:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()
    lc = cfg["lora"]
    lora = LoraConfig(r=lc["r"], lora_alpha=lc["alpha"], lora_dropout=lc["dropout"],
                      target_modules=list(lc["target_modules"]), bias="none",
                      task_type="CAUSAL_LM")
    model = get_peft_model(base, lora)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()  # adapters train in fp32 whatever the base is
    return model


def completion_loss(model: Any, packed: Packed, placement: Placement
                    ) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the sequence's trained tokens, projecting only those hidden
    states onto the vocabulary (the prompt's logits are never computed).

    A packed sequence (several records, maybe sharing a prefix; see
    :mod:`engine.training.packing`) gets its positions and its layout, which lets each token
    see its own record and its shared prefix only, so the result equals running the records
    one by one.
    """
    inner = model.get_base_model()
    decoder, head = inner.get_decoder(), inner.get_output_embeddings()
    dev = placement.device
    ids = torch.tensor(packed.ids, device=dev)
    target = torch.tensor(packed.target, device=dev)
    kwargs: dict[str, Any] = {}
    if not packed.plain:
        kwargs["position_ids"] = torch.tensor(packed.positions, device=dev)[None]
        if inner.config._attn_implementation == torch_attention.NAME:
            kwargs["packed_layout"] = packed.layout  # attended piece by piece
        else:  # a model that bypasses the attention interface: one dense mask, exact
            kwargs["attention_mask"] = torch_attention.dense_mask(packed.layout, len(packed), dev)
    where = (target != IGNORE).nonzero(as_tuple=True)[0]
    with torch.autocast(device_type=dev, dtype=placement.dtype, enabled=placement.autocast):
        hidden = decoder(input_ids=ids[None, :], **kwargs).last_hidden_state[0]
        logits = head(hidden[where])
    loss = F.cross_entropy(logits.float(), target[where], reduction="sum")
    return loss, int(where.numel())


class TorchTrainer:
    def __init__(self, ctx: StageContext, cfg: dict[str, Any], plan: TrainPlan,
                 data: StageData, model_dir: Path, tok: Any, probes: list[Record],
                 renderer: Renderer) -> None:
        self.ctx, self.cfg, self.plan, self.data = ctx, cfg, plan, data
        self.model_dir, self.tok, self.probes, self.renderer = model_dir, tok, probes, renderer
        self.placement = place(cfg)
        self.judge = SampleJudge(cfg)
        self.stage_cfg = cfg[plan.stage]
        self.learning_rate = float(self.stage_cfg.get("learning_rate",
                                                      cfg["train"]["learning_rate"]))
        n = len(data.examples)
        if plan.max_steps is not None:
            self.total_steps = plan.max_steps
        else:
            self.total_steps = max(1, math.ceil(n * plan.epochs / plan.grad_accum))
        self.result = TrainResult(status="ok", total_steps=self.total_steps,
                                  placement=f"{self.placement.device}/"
                                            f"{self.placement.precision}")

    # -- data order ---------------------------------------------------------------------------
    def example_at(self, micro: int) -> int:
        return example_at(self.cfg["run"]["seed"], self.plan.stage, len(self.data.examples),
                          micro)

    def train_settings(self) -> dict[str, Any]:
        c, s = self.cfg, self.stage_cfg
        return {"model.id": c["model"]["id"], "lora.r": c["lora"]["r"],
                "lora.alpha": c["lora"]["alpha"], "lora.dropout": c["lora"]["dropout"],
                "lora.target_modules": list(c["lora"]["target_modules"]),
                "learning_rate": self.learning_rate,
                "stage.grad_accum": self.plan.grad_accum, "stage.seq_len": s["seq_len"],
                "stage.epochs": self.plan.epochs, "stage.max_steps": self.plan.max_steps,
                "data.train": list(c["data"]["train"]), "run.seed": c["run"]["seed"]}

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        ctx, cfg, plan, res = self.ctx, self.cfg, self.plan, self.result
        tc = cfg["train"]
        torch.manual_seed(cfg["run"]["seed"])
        random.seed(cfg["run"]["seed"])
        ctx.emit("log", level="info", message=(
            f"training {plan.stage} on {self.placement.device} in {self.placement.precision} "
            f"({self.placement.why}); {len(self.data.examples)} records, "
            f"{self.total_steps} steps of {plan.grad_accum}"))
        model = load_model(self.model_dir, cfg, self.placement)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=tc["weight_decay"])
        warm = max(1, int(self.total_steps * tc["warmup_ratio"]))
        floor = tc["min_lr_ratio"]

        def lr_at(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = (step - warm) / max(1, self.total_steps - warm)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        scaler = torch.amp.GradScaler(self.placement.device) if self.placement.loss_scaling \
            else None
        monitor = MemoryMonitor(cfg, memory_reader(self.placement.device))
        res.budget_gb = monitor.budget
        step = self._resume(model, opt, sched)
        examples = self.data.examples
        started = time.monotonic()
        tokens_this_attempt = 0
        model.train()
        while step < self.total_steps:
            if ctx.stop_requested():
                self._save(model, opt, sched, step)
                res.status = "cancelled"
                raise Cancelled()
            t0 = time.monotonic()
            idx = [self.example_at(step * plan.grad_accum + k) for k in range(plan.grad_accum)]
            window_trained = sum(examples[i].trained_tokens for i in idx)
            try:
                step_loss = torch.zeros((), device=self.placement.device)
                window = [examples[i] for i in idx]
                # throughput counts the records' tokens, shared prefixes included: that is
                # the data trained on, and what a trainer without sharing would compute
                step_tokens = sum(len(e.input_ids) for e in window)
                for packed in pack_window(window, tc["pack_tokens"], tc["share_prefix_tokens"]):
                    loss_sum, _ = completion_loss(model, packed, self.placement)
                    scaled = loss_sum / max(1, window_trained)
                    (scaler.scale(scaled) if scaler else scaled).backward()
                    step_loss += scaled.detach()
                if scaler:
                    scaler.unscale_(opt)
                gnorm = torch.nn.utils.clip_grad_norm_(params, tc["max_grad_norm"])
                loss_v, gnorm_v = float(step_loss), float(gnorm)  # the one host sync per step
            except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
                log.exception("device error at step %s", step + 1)
                res.device_error = f"{type(exc).__name__}: {exc}"
                ctx.emit("error", message=f"device error at step {step + 1}: {exc}",
                         detail=None, hint=explain_device_error(exc, self.placement.device))
                res.status = "failed"
                break
            if not (math.isfinite(loss_v) and math.isfinite(gnorm_v)):
                res.nan_step = step + 1
                ctx.emit("error", message=f"non-finite {'loss' if not math.isfinite(loss_v) else 'gradient norm'} "
                         f"at step {step + 1} (loss {loss_v}, grad norm {gnorm_v}); training "
                         "stopped, the last good checkpoint is kept",
                         detail=None, hint="Lower train.learning_rate or check the data for "
                                           "broken records; resume from the last checkpoint.")
                opt.zero_grad(set_to_none=True)
                res.status = "failed"
                break
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
            lr = sched.get_last_lr()[0]
            sched.step()
            step += 1
            dt = time.monotonic() - t0
            tokens_this_attempt += step_tokens
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
                ctx.emit("memory", **s.payload())
                if monitor.over_hard_limit(s):
                    res.memory_stop = (f"{s.used_gb:.1f} GB used, over the hard limit of "
                                       f"{monitor.hard:.1f} GB")
                    self._save(model, opt, sched, step)
                    ctx.emit("error", message=f"memory: {res.memory_stop}; stopped with a "
                             "checkpoint before the system runs out",
                             detail=None, hint="Lower the stage's seq_len, enable "
                             "train.gradient_checkpointing or raise memory.budget_gb.")
                    res.status = "failed"
                    break
            if step % tc["sample_every"] == 0:
                self.samples(model, step)
            if step % tc["checkpoint_every"] == 0:
                self._save(model, opt, sched, step)
            if plan.stop_when is not None and plan.stop_when(res.losses):
                ctx.emit("log", level="info", message=f"target reached at step {step}")
                break
        res.steps = step
        res.peak_memory_gb = max(monitor.peak_used, monitor.sample().used_gb)
        if res.status == "ok":
            self.samples(model, step)
            self._save(model, opt, sched, step)
            self._save_adapter(model)
        return res

    # -- samples ------------------------------------------------------------------------------
    @torch.no_grad()
    def samples(self, model: Any, step: int) -> None:
        if not self.probes:
            return
        model.eval()
        eos = [self.tok.convert_tokens_to_ids(t) for t in stop_tokens(self.tok)]
        try:
            for rec in self.probes:
                prompt = self.renderer.render(rec).prompt
                ids = self.tok(prompt, return_tensors="pt",
                               add_special_tokens=False).input_ids.to(self.placement.device)
                with torch.autocast(device_type=self.placement.device, dtype=self.placement.dtype,
                                    enabled=self.placement.autocast):
                    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                         max_new_tokens=self.cfg["train"]["sample_max_tokens"],
                                         do_sample=False, eos_token_id=eos,
                                         pad_token_id=eos[0], use_cache=True)
                answer = self.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
                v = self.judge(rec, answer)
                sample = {"step": step, "bucket": rec.bucket, "prompt": rec.user_text,
                          "output": answer, "verdict": v}
                self.result.samples.append(sample)
                self.ctx.emit("sample", **sample)
        finally:
            model.train()


    # -- checkpoints --------------------------------------------------------------------------
    def _save(self, model: Any, opt: Any, sched: Any, step: int) -> None:
        if step == 0:
            return
        root = self.plan.checkpoint_root
        with ckpt.saving(root, step, self.cfg["train"]["keep_checkpoints"]) as tmp:
            model.save_pretrained(tmp)
            torch_state.save_optimizer(opt.state_dict(), tmp)
            torch_state.save_scheduler(sched.state_dict(), tmp)
            torch_state.save_rng(tmp)
            ckpt.write_state(tmp, {
                "step": step, "total_steps": self.total_steps, "stage": self.plan.stage,
                "micro_batches_done": step * self.plan.grad_accum,
                "losses": self.result.losses, "grad_norms": self.result.grad_norms,
                "tokens": self.result.tokens, "seconds": self.result.seconds,
                "settings": self.train_settings(), "time": time.time()})
        final = ckpt.step_dir(root, step)
        self.ctx.emit("artifact", kind="checkpoint", path=str(final))

    def _resume(self, model: Any, opt: Any, sched: Any) -> int:
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
        from peft import set_peft_model_state_dict
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        ckpt.check_loadable(last)  # safetensors and JSON only: nothing here can run code
        state = read_resume_state(self.ctx, last, self.train_settings())
        try:
            weights = load_file(str(last / "adapter_model.safetensors"),
                                device=self.placement.device)
        except (SafetensorError, OSError) as exc:
            raise ckpt.CheckpointError(f"{last}/adapter_model.safetensors: not readable "
                                       f"({str(exc)[:120]})") from None
        set_peft_model_state_dict(model, weights)
        try:
            opt.load_state_dict(torch_state.load_optimizer(last))
            sched.load_state_dict(torch_state.load_scheduler(last))
            torch_state.load_rng(last)
        except (torch_state.StateError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ckpt.CheckpointError(f"cannot resume from {last}: {exc}") from None
        return restore_history(self.ctx, self.result, state, self.plan.stage, last,
                               self.total_steps)

    def _save_adapter(self, model: Any) -> None:
        import shutil

        out = self.plan.adapter_dir
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        model.save_pretrained(tmp)
        if self.ctx.run_dir is not None and (Path(self.ctx.run_dir) / "config.toml").exists():
            shutil.copy(Path(self.ctx.run_dir) / "config.toml", tmp / "web4tui-config.toml")
        self.tok.save_pretrained(tmp)
        ckpt.swap_in(tmp, out)
        self.ctx.emit("artifact", kind="adapter", path=str(out))
