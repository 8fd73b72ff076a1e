"""LoRA training with transformers + peft: what the loop (:mod:`engine.training.loop`) asks of
torch — a step's loss and gradients, the optimizer step, state files, samples, the adapter.

One optimizer step = ``grad_accum`` records (batch 1, no padding). What makes it fast here:
the step's records packed into few sequences whose shared prompt prefix runs once
(:mod:`engine.backends.packing`, attended piece by piece by
:mod:`engine.backends.torch_attention`), the frozen base in the device's fast precision,
logits computed only where the loss is (completion tokens — the vocabulary projection of
prompt tokens is a large share of the work for a small model with a large vocabulary), a
token-weighted loss with a single host sync per optimizer step. Its checkpoint state is
safetensors + JSON (:mod:`engine.backends.torch_state`), never pickle.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from engine.backends import (
    StateError,
    torch_attention,
    torch_dropout,
    torch_sharding,
    torch_state,
)
from engine.backends.torch_loss import head_loss
from engine.backends.packing import Packed, pack_window
from engine.backends.torch_device import Placement, explain_device_error, memory_reader
from engine.examples import IGNORE, Example
from engine.backends.distributed import SINGLE, World

__all__ = ["TorchLoRA", "completion_loss", "load_model"]


def load_model(model_dir: Path, cfg: dict[str, Any], placement: Placement) -> Any:
    """The base model, frozen, in the placement's dtype, with LoRA adapters in fp32."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=placement.dtype, trust_remote_code=cfg["model"]["trust_remote_code"],
        attn_implementation=torch_attention.register(cfg["train"]["attention_math_max"],
                                                    cfg["train"]["attention_keep_max"]))
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
    torch_dropout.install(model)
    if placement.autocast:
        # peft copies each adapter's input to fp32 (the adapters' dtype), and autocast copies
        # it back to the base's format for the matrix product: the same numbers at the cost
        # of two copies per adapter. Kept in the base's format, dropout reads half the bytes.
        # An adapted output layer runs outside autocast (torch_loss): it keeps peft's copy.
        head = model.get_base_model().get_output_embeddings()
        for module in model.modules():
            if hasattr(module, "lora_A") and module is not head:
                module.cast_input_dtype_enabled = False
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()  # adapters train in fp32 whatever the base is
    return model


def completion_loss(model: Any, packed: Packed, placement: Placement, loss_chunk: int = 0
                    ) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the sequence's trained tokens, projecting only those hidden
    states onto the vocabulary (the prompt's logits are never computed).

    A packed sequence (several records, maybe sharing a prefix; see
    :mod:`engine.backends.packing`) gets its positions and its layout, which lets each token
    see its own record and its shared prefix only, so the result equals running the records
    one by one. ``loss_chunk`` > 0 computes the loss that many positions at a time
    (:mod:`engine.backends.torch_loss`); 0 is the plain cross-entropy.
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
        if not loss_chunk:
            loss = F.cross_entropy(head(hidden[where]).float(), target[where], reduction="sum")
    if loss_chunk:  # in the head's own precision, outside autocast
        loss = head_loss(head, hidden[where], target[where], loss_chunk)
    return loss, int(where.numel())


class _Loss(torch.nn.Module):
    """The completion loss as one module's forward, so data parallelism sees every pass."""

    def __init__(self, model: Any, placement: Placement, loss_chunk: int) -> None:
        super().__init__()
        self.model, self.p, self.loss_chunk = model, placement, loss_chunk

    def forward(self, packed: Packed) -> torch.Tensor:
        return completion_loss(self.model, packed, self.p, self.loss_chunk)[0]


#: What a process whose share of a step is empty runs (a step of 1 record on 2 processes):
#: one token that trains nothing, so it still takes part in the gradient exchange.
_NOTHING = Packed(ids=[0], target=[IGNORE], positions=[0], records=1)


class TorchLoRA:
    """The torch backend of :class:`engine.training.loop.Backend`.

    With several processes (``world``) each runs its share of a step's records through
    DistributedDataParallel, which averages the gradients once per step; the loss is scaled
    by the number of processes so the average is the sum the whole window would give.
    """

    name = "torch"
    memory_hint = ("Lower the stage's seq_len, enable train.gradient_checkpointing or raise "
                   "memory.budget_gb.")
    device_errors = (RuntimeError, torch.cuda.OutOfMemoryError)

    def __init__(self, cfg: dict[str, Any], model_dir: Path, tok: Any, placement: Placement,
                 emit: Any, world: World = SINGLE) -> None:
        self.cfg, self.model_dir, self.tok, self.p = cfg, model_dir, tok, placement
        self.world = world
        #: sharded weights (fsdp): saving and sampling are steps every process takes
        self.collective = world.size > 1 and world.strategy == "fsdp"
        self.placement = f"{placement.device}/{placement.precision}"
        self.model: Any = None
        self.steps = 0  # optimizer steps taken, for the scheduler record
        self.memory = memory_reader(placement.device)  # keeps the peak between reads

    def describe(self) -> str:
        return f"on {self.p.device} in {self.p.precision} ({self.p.why})"

    def settings(self) -> dict[str, Any]:
        return {}

    def load(self, learning_rate: float) -> None:
        torch.manual_seed(self.cfg["run"]["seed"])
        self.model = load_model(self.model_dir, self.cfg, self.p)
        self.loss: Any = _Loss(self.model, self.p, self.cfg["train"]["loss_chunk_tokens"])
        if self.collective:
            self.loss = torch_sharding.shard(self.loss, self.model)
        elif self.world.size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # Every process loads the same weights and seeds the same adapters: no broadcast
            # of the whole base at start (init_sync=False), no buffers to keep in step.
            self.loss = DDP(self.loss, device_ids=[self.world.local_rank]
                            if self.p.device == "cuda" else None,
                            init_sync=False, forward_sync_buffers=False,
                            gradient_as_bucket_view=True)
        if self.world.rank:  # its own dropout masks; the first keeps the one-process stream
            torch.manual_seed(self.cfg["run"]["seed"] + self.world.rank)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.peak_lr = learning_rate
        self.opt = torch.optim.AdamW(self.params, lr=learning_rate,
                                     weight_decay=self.cfg["train"]["weight_decay"])
        self.scaler = torch.amp.GradScaler(self.p.device) if self.p.loss_scaling else None
        self.model.train()

    def step(self, window: Sequence[Example], step: int, trained_tokens: int
             ) -> tuple[float, float, int]:
        tc = self.cfg["train"]
        packs = list(pack_window(list(window), tc["pack_tokens"], tc["share_prefix_tokens"]))
        if self.collective:  # every pass gathers each layer: all take as many passes
            import torch.distributed as dist
            most = torch.tensor([len(packs)], device=self.p.device)
            dist.all_reduce(most, op=dist.ReduceOp.MAX)
            packs += [_NOTHING] * (int(most) - len(packs))
        elif not packs and self.world.size > 1:
            packs = [_NOTHING]
        # [loss over the window, tokens run]: summed over the processes in one exchange
        totals = torch.zeros(2, dtype=torch.float64, device=self.p.device)
        totals[1] = sum(len(e.input_ids) for e in window)
        for i, packed in enumerate(packs):
            # gradients are exchanged once, on a process's last pass of the step
            quiet = self.world.size > 1 and not self.collective and i < len(packs) - 1
            with self.loss.no_sync() if quiet else contextlib.nullcontext():
                loss_sum = self.loss(packed)
                scaled = loss_sum * self.world.size / max(1, trained_tokens)
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            totals[0] += loss_sum.detach().double()
        if self.world.size > 1:
            import torch.distributed as dist
            dist.all_reduce(totals)
        if self.scaler:
            self.scaler.unscale_(self.opt)
        gnorm = torch_sharding.whole(
            torch.nn.utils.clip_grad_norm_(self.params, tc["max_grad_norm"]))
        loss, tokens = (totals / torch.tensor([max(1, trained_tokens), 1.0],
                                              dtype=torch.float64, device=self.p.device)).tolist()
        # the one host sync per step
        return loss, float(gnorm), int(tokens)

    def apply(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr
        if self.scaler:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.steps += 1

    def memory_extras(self) -> dict[str, Any]:
        return {}

    def device_hint(self, exc: BaseException) -> str:
        return explain_device_error(exc, self.p.device)

    # -- state --------------------------------------------------------------------------------
    def save_state(self, folder: Path | None) -> None:
        """With sharded weights every process calls this (``folder`` None but on the first)."""
        if self.collective:
            weights = torch_sharding.full_adapter(self.model)
            optimizer = torch_sharding.full_optimizer(self.opt)
            if folder is None:
                return
            self.model.save_pretrained(folder, state_dict=weights)
        else:
            self.model.save_pretrained(folder)
            optimizer = self.opt.state_dict()
        torch_state.save_optimizer(optimizer, folder)
        # The loop owns the schedule; this records where it stood, in LambdaLR's outline.
        torch_state.save_scheduler({"last_epoch": self.steps, "base_lrs": [self.peak_lr],
                                    "_last_lr": [self.opt.param_groups[0]["lr"]]}, folder)
        torch_state.save_rng(folder)

    def load_state(self, folder: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            weights = load_file(str(folder / "adapter_model.safetensors"), device=self.p.device)
        except (SafetensorError, OSError) as exc:
            raise StateError(f"{folder}/adapter_model.safetensors: not readable "
                                  f"({str(exc)[:120]})") from None
        try:
            if self.collective:
                torch_sharding.load_adapter(self.model, weights)
                torch_sharding.load_optimizer(self.opt, torch_state.load_optimizer(folder))
            else:
                set_peft_model_state_dict(self.model, weights)
                self.opt.load_state_dict(torch_state.load_optimizer(folder))
            # the loop recomputes the schedule from the step; this is checked and counted
            self.steps = torch_state.load_scheduler(folder)["last_epoch"]
            torch_state.load_rng(folder)
        except (torch_state.StateError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise StateError(f"cannot resume from {folder}: {exc}") from None

    # -- samples and the adapter --------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompt: str, max_new_tokens: int, stops: list[str]) -> str:
        eos = [self.tok.convert_tokens_to_ids(t) for t in stops]
        ids = self.tok(prompt, return_tensors="pt",
                       add_special_tokens=False).input_ids.to(self.p.device)
        self.model.eval()
        try:
            whole = torch_sharding.unsharded(self.loss) if self.collective \
                else contextlib.nullcontext()
            with whole, torch.autocast(device_type=self.p.device, dtype=self.p.dtype,
                                       enabled=self.p.autocast):
                out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                          max_new_tokens=max_new_tokens, do_sample=False,
                                          eos_token_id=eos, pad_token_id=eos[0], use_cache=True)
        finally:
            self.model.train()
        return self.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()

    def save_adapter(self, folder: Path | None) -> str | None:
        if self.collective:
            weights = torch_sharding.full_adapter(self.model)
            if folder is not None:
                self.model.save_pretrained(folder, state_dict=weights)
            return None
        self.model.save_pretrained(folder)
        return None
