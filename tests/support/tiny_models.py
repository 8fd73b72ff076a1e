"""Tiny random models with the default model's tokenizer, and LoRA adapters on them.

Nothing is downloaded: the tokenizer (and its ChatML template) comes from the embedded
SmolLM2 folder; weights are random from a seed, 2 layers, a small hidden size.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

#: Files of the default model's tokenizer copied into every tiny model.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def default_tokenizer_dir() -> Path:
    from engine import models

    return models.resolve("default")


def _copy_tokenizer(dst: Path, chat_template: str | None = None) -> None:
    src = default_tokenizer_dir()
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    if chat_template is not None:
        (dst / "chat_template.jinja").write_text(chat_template, encoding="utf-8")


def build_tiny(out: Path, arch: str = "llama", *, seed: int = 0, hidden: int = 64,
               chat_template: str | None = None, **overrides: Any) -> Path:
    """A 2-layer random model of the given architecture saved as an HF folder."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    common = dict(vocab_size=49152, hidden_size=hidden, intermediate_size=hidden * 2,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=2048, rms_norm_eps=1e-5, bos_token_id=1,
                  eos_token_id=2, pad_token_id=2, tie_word_embeddings=True)
    common.update(overrides)
    if arch == "llama":
        config = LlamaConfig(rope_theta=100000.0, **common)
    elif arch == "qwen2":
        config = Qwen2Config(rope_theta=1000000.0, **common)
    else:
        raise ValueError(arch)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # a wider spread than the default init: decisive next tokens
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.08 if "embed" not in name else 0.5)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.05)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    _copy_tokenizer(out, chat_template)
    return out


def build_adapter(base: Path, out: Path, *, seed: int = 1,
                  train: list[tuple[str, str]] | None = None, steps: int = 150,
                  lr: float = 3e-2) -> Path:
    """A LoRA adapter on ``base`` with non-zero weights.

    Without ``train`` the adapter is random (both A and B non-zero). With ``train`` —
    (prompt, completion) pairs — the adapter is trained until the model answers each prompt
    with its completion greedily: a tiny model that "knows" a tool call.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, init_lora_weights=False,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj"])
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(0.5)
    if train:
        tok = AutoTokenizer.from_pretrained(base)
        batches = []
        for prompt, completion in train:
            p_ids = tok(prompt, add_special_tokens=False).input_ids
            c_ids = tok(completion, add_special_tokens=False).input_ids
            ids = torch.tensor([p_ids + c_ids])
            labels = torch.tensor([[-100] * len(p_ids) + c_ids])
            batches.append((ids, labels))
        opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
        peft_model.train()
        for step in range(steps):
            ids, labels = batches[step % len(batches)]
            loss = peft_model(input_ids=ids, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            if loss.item() < 0.01 and step >= len(batches):
                break
        peft_model.eval()
    peft_model.save_pretrained(out)
    return out
