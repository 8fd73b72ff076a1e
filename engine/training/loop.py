"""The training loop, written once for every backend.

One optimizer step = ``grad_accum`` records in the seeded data order
(:func:`engine.training.plan.example_at`). Around each step the loop owns everything a
backend need not know: the warmup + cosine schedule, the finite check on loss and gradient
norm, the metric / progress / memory events, the memory hard limit, the sample generations,
the cadence of checkpoints, resuming from one, graceful stop, and the final adapter folder.
A backend (:class:`Backend`) only turns a window of records into a loss and gradients,
applies them at a learning rate, writes and reads its own state files, generates a sample
and writes its adapter: the shape of mlx-lm's ``train()``, which takes its loss and batches
as parameters so one loop serves every model.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from engine.backends import StateError
from engine.backends.distributed import SINGLE, World
from engine.context import Cancelled, StageContext
from engine.examples import Example
from engine.records import Record
from engine.render import Renderer
from engine.runs import atomic_dir
from engine.stops import stop_tokens
from engine.training import checkpoint as ckpt
from engine.training.data import StageData
from engine.training.memory import MemoryMonitor, MemorySample
from engine.training.plan import (
    SampleJudge,
    TrainPlan,
    TrainResult,
    example_at,
    read_resume_state,
    restore_history,
)

__all__ = ["Backend", "lr_factor", "total_steps", "train", "train_settings"]

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What the loop asks of a training library (see ``engine.backends.torch_lora`` and
    ``engine.backends.mlx_lora``)."""

    name: str  # "torch" / "mlx"
    placement: str  # where and in what precision, e.g. "cpu/fp32" or "mlx-cpu/4-bit"
    device_errors: tuple[type[BaseException], ...]  # what a failing step raises
    memory_hint: str  # what to change when the memory hard limit is crossed

    def describe(self) -> str:
        """Where it trains, for the opening log line ("on cpu in fp32 (why)")."""

    def settings(self) -> dict[str, Any]:
        """Backend settings a checkpoint records beside the common ones."""

    def load(self, learning_rate: float) -> None:
        """Load the base model, add the adapters, build the optimizer."""

    def step(self, window: Sequence[Example], step: int, trained_tokens: int
             ) -> tuple[float, float, int]:
        """Forward and backward over one window: (loss, gradient norm after clipping,
        tokens processed); the loss is token-weighted over ``trained_tokens``."""

    def apply(self, lr: float) -> None:
        """Take the optimizer step at this learning rate and clear the gradients."""

    def memory(self) -> tuple[float, float]:
        """(used GB, peak GB) of device memory."""

    def memory_extras(self) -> dict[str, Any]:
        """Extra fields of the memory event."""

    def device_hint(self, exc: BaseException) -> str:
        """What to do about a device error."""

    def save_state(self, folder: Path) -> None:
        """Write adapter weights, optimizer and RNG state (safetensors + JSON) into folder.
        A backend whose ``collective`` attribute is true (weights sharded across processes)
        is called on every process, with None but on the first; so is save_adapter."""

    def load_state(self, folder: Path) -> None:
        """Read what :meth:`save_state` wrote; raises StateError when it cannot."""

    def generate(self, prompt: str, max_new_tokens: int, stops: list[str]) -> str:
        """Greedy answer to a rendered prompt, without its stop token."""

    def save_adapter(self, folder: Path) -> str | None:
        """Write the final adapter in PEFT format; returns a line to log, if any."""


def total_steps(plan: TrainPlan, n_examples: int) -> int:
    if plan.max_steps is not None:
        return plan.max_steps
    return max(1, math.ceil(n_examples * plan.epochs / plan.grad_accum))


def lr_factor(step: int, total: int, warmup_ratio: float, floor: float) -> float:
    """Linear warmup, then cosine decay to ``floor`` times the peak."""
    warm = max(1, int(total * warmup_ratio))
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def learning_rate(cfg: dict[str, Any], stage: str) -> float:
    return float(cfg[stage].get("learning_rate", cfg["train"]["learning_rate"]))


def train_settings(cfg: dict[str, Any], plan: TrainPlan, backend: Backend) -> dict[str, Any]:
    """The settings a checkpoint is made with: a resume warns about each that changed."""
    c, s = cfg, cfg[plan.stage]
    return {"model.id": c["model"]["id"], "lora.r": c["lora"]["r"],
            "lora.alpha": c["lora"]["alpha"], "lora.dropout": c["lora"]["dropout"],
            "lora.target_modules": list(c["lora"]["target_modules"]),
            "learning_rate": learning_rate(cfg, plan.stage),
            "stage.grad_accum": plan.grad_accum, "stage.seq_len": s["seq_len"],
            "stage.epochs": plan.epochs, "stage.max_steps": plan.max_steps,
            "data.train": list(c["data"]["train"]), "run.seed": c["run"]["seed"],
            **backend.settings()}


class _Run:
    """One stage's training: the loop's state between steps."""

    def __init__(self, ctx: StageContext, plan: TrainPlan, data: StageData, backend: Backend,
                 tok: Any, probes: list[Record], renderer: Renderer | None,
                 order: Callable[[int], int] | None, world: World = SINGLE) -> None:
        self.ctx, self.cfg, self.plan, self.data = ctx, ctx.cfg, plan, data
        self.world = world
        seed, n = self.cfg["run"]["seed"], len(data.examples)
        self.order = order or (lambda micro: example_at(seed, plan.stage, n, micro))
        self.backend, self.tok, self.probes, self.renderer = backend, tok, probes, renderer
        self.total = total_steps(plan, len(data.examples))
        self.judge = SampleJudge(self.cfg)
        self.settings = train_settings(self.cfg, plan, backend)
        self.result = TrainResult(status="ok", total_steps=self.total,
                                  placement=backend.placement)
        self.sampled_at = self.saved_at = -1
        # sharded weights: every process takes part in saving and sampling, the first writes
        self._collective = bool(getattr(backend, "collective", False))

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        ctx, cfg, plan, res, be = self.ctx, self.cfg, self.plan, self.result, self.backend
        tc = cfg["train"]
        random.seed(cfg["run"]["seed"])
        ctx.emit("log", level="info", message=(
            f"training {plan.stage} {be.describe()}; {len(self.data.examples)} records, "
            f"{self.total} steps of {plan.grad_accum}"
            + (f" shared by {self.world.size} processes" if self.world.size > 1 else "")))
        peak_lr = learning_rate(cfg, plan.stage)
        be.load(peak_lr)
        monitor = MemoryMonitor(cfg, be.memory)
        res.budget_gb = monitor.budget
        step = self.resume()
        examples = self.data.examples
        started = time.monotonic()
        while step < self.total:
            if self.world.agree(ctx.stop_requested()):  # every process stops at the same step
                self.save(step)
                res.status = "cancelled"
                raise Cancelled()
            t0 = time.monotonic()
            window = [examples[self.order(step * plan.grad_accum + k)]
                      for k in range(plan.grad_accum)]
            window_trained = sum(e.trained_tokens for e in window)
            try:
                loss_v, gnorm_v, step_tokens = be.step(self.world.share(window), step,
                                                       window_trained)
            except be.device_errors as exc:
                if self.world.size > 1:
                    raise  # the others wait on this one: ending the process ends them all
                log.exception("device error at step %s", step + 1)
                res.device_error = f"{type(exc).__name__}: {exc}"
                ctx.emit("error", message=f"device error at step {step + 1}: {exc}",
                         detail=None, hint=be.device_hint(exc))
                res.status = "failed"
                break
            if not (math.isfinite(loss_v) and math.isfinite(gnorm_v)):
                res.nan_step = step + 1
                what = "loss" if not math.isfinite(loss_v) else "gradient norm"
                ctx.emit("error", message=f"non-finite {what} at step {step + 1} (loss "
                         f"{loss_v}, grad norm {gnorm_v}); training stopped, the last good "
                         "checkpoint is kept",
                         detail=None, hint="Lower train.learning_rate or check the data for "
                                           "broken records; resume from the last checkpoint.")
                res.status = "failed"
                break
            lr = peak_lr * lr_factor(step, self.total, tc["warmup_ratio"], tc["min_lr_ratio"])
            be.apply(lr)
            step += 1
            dt = time.monotonic() - t0
            res.losses.append(loss_v)
            res.grad_norms.append(gnorm_v)
            res.tokens += step_tokens
            res.seconds += dt
            # throughput counts the records' tokens, shared prefixes included: that is the
            # data trained on, and what a trainer without sharing would compute
            ctx.emit("metric", step=step, values={
                "loss": round(loss_v, 5), "lr": lr, "grad_norm": round(gnorm_v, 5),
                "tokens_per_s": round(step_tokens / dt, 1) if dt else None,
                "trained_tokens": window_trained})
            per_step = (time.monotonic() - started) / max(1, step - (res.resumed_from or 0))
            ctx.emit("progress", done=step, total=self.total, unit="steps",
                     eta_s=round(per_step * (self.total - step), 1))
            if step % tc["memory_every"] == 0 or step == 1:
                s = self.memory(monitor)
                if monitor.over_hard_limit(s):
                    res.memory_stop = (f"{s.used_gb:.1f} GB used, over the hard limit of "
                                       f"{monitor.hard:.1f} GB")
                    self.save(step)
                    ctx.emit("error", message=f"memory: {res.memory_stop}; stopped with a "
                             "checkpoint before the system runs out",
                             detail=None, hint=be.memory_hint)
                    res.status = "failed"
                    break
            if step % tc["sample_every"] == 0:
                self.samples(step)
            if step % tc["checkpoint_every"] == 0:
                self.save(step)
            if plan.stop_when is not None and plan.stop_when(res.losses):
                ctx.emit("log", level="info", message=f"target reached at step {step}")
                break
        res.steps = step
        res.peak_memory_gb = max(self.world.gather(
            max(monitor.peak_used, monitor.sample().used_gb)))
        if res.status == "ok":
            self.samples(step)  # once per step: a no-op when that step was just sampled
            self.save(step)
            self.save_adapter()
        return res

    def memory(self, monitor: MemoryMonitor) -> MemorySample:
        """One memory event: each field the largest over the processes, and every process's
        own figures under ``ranks`` when there are several; returns the largest."""
        mine = monitor.sample()
        every = self.world.gather(mine)
        worst = max(every, key=lambda m: m.used_gb)
        payload = {k: max(getattr(m, k) for m in every) for k in mine.__dict__}
        extra = {"ranks": [{"rank": r, **m.payload()} for r, m in enumerate(every)]} \
            if self.world.size > 1 else {}
        self.ctx.emit("memory", **{k: round(v, 3) for k, v in payload.items()},
                      **self.backend.memory_extras(), **extra)
        return worst

    # -- samples ------------------------------------------------------------------------------
    def samples(self, step: int) -> None:
        if not (self.world.main or self._collective) or not self.probes \
                or self.renderer is None or step == self.sampled_at:
            return
        self.sampled_at = step
        stops = stop_tokens(self.tok)
        for rec in self.probes:
            answer = self.backend.generate(self.renderer.render(rec).prompt,
                                           self.cfg["train"]["sample_max_tokens"], stops)
            sample = {"step": step, "bucket": rec.bucket, "prompt": rec.user_text,
                      "output": answer, "verdict": self.judge(rec, answer)}
            self.result.samples.append(sample)
            self.ctx.emit("sample", **sample)

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, step: int) -> None:
        if step == 0 or step == self.saved_at:
            return
        if not self.world.main:  # one writer; the others hold the same weights (or shards)
            if self._collective:
                self.backend.save_state(None)
            self.saved_at = step
            return
        root = self.plan.checkpoint_root
        with ckpt.saving(root, step, self.cfg["train"]["keep_checkpoints"]) as tmp:
            self.backend.save_state(tmp)
            ckpt.write_state(tmp, {
                "step": step, "total_steps": self.total, "stage": self.plan.stage,
                "backend": self.backend.name,
                "micro_batches_done": step * self.plan.grad_accum,
                "losses": self.result.losses, "grad_norms": self.result.grad_norms,
                "tokens": self.result.tokens, "seconds": self.result.seconds,
                "settings": self.settings, "time": time.time()})
        self.saved_at = step
        self.ctx.emit("artifact", kind="checkpoint", path=str(ckpt.step_dir(root, step)))

    def resume(self) -> int:
        root, stage = self.plan.checkpoint_root, self.plan.stage
        if not self.plan.resume:
            aside = ckpt.set_aside(root) if self.world.main else None
            if aside:
                self.ctx.emit("log", level="info", message=(
                    f"starting {stage} over; earlier checkpoints kept in {aside}"))
            return 0
        last = ckpt.latest(root, warn=lambda m: self.ctx.emit("log", level="warning", message=m))
        if last is None:
            self.ctx.emit("log", level="warning",
                          message=f"no checkpoint of {stage} to resume; starting fresh")
            return 0
        ckpt.check_loadable(last)  # safetensors and JSON only: nothing here can run code
        state = read_resume_state(self.ctx, last, self.settings)
        try:
            self.backend.load_state(last)
        except StateError as exc:
            raise ckpt.CheckpointError(str(exc)) from None
        return restore_history(self.ctx, self.result, state, stage, last, self.total)

    def save_adapter(self) -> None:
        if not self.world.main:
            if self._collective:
                self.backend.save_adapter(None)
            return
        out = self.plan.adapter_dir
        run_config = Path(self.ctx.run_dir) / "config.toml" if self.ctx.run_dir else None
        with atomic_dir(out) as tmp:
            note = self.backend.save_adapter(tmp)
            if run_config is not None and run_config.exists():
                shutil.copy(run_config, tmp / "web4tui-config.toml")
            self.tok.save_pretrained(tmp)
        if note:
            self.ctx.emit("log", level="info", message=note)
        self.ctx.emit("artifact", kind="adapter", path=str(out))


def train(ctx: StageContext, plan: TrainPlan, data: StageData, backend: Backend, tok: Any,
          probes: list[Record], renderer: Renderer | None,
          order: Callable[[int], int] | None = None, world: World = SINGLE) -> TrainResult:
    """Train one stage with ``backend``; returns what happened (raises Cancelled on a stop).

    ``order`` maps a micro-batch number to an example index (the seeded epoch order when
    None; benchmarks pass a fixed one to compare against other trainers). ``world`` is this
    process's place among several (:mod:`engine.training.distributed`): each takes its share
    of every step's records and the first one alone writes."""
    return _Run(ctx, plan, data, backend, tok, probes, renderer, order, world).run()

