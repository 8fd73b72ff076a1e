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
               chat_template: str | None = None,
               train: list[tuple[str, str]] | None = None, **overrides: Any) -> Path:
    """A 2-layer random model of the given architecture saved as an HF folder.

    With ``train`` — (prompt, completion) pairs — every weight is then trained until the
    model answers each prompt with its completion greedily (a tiny model that "knows" a
    tool call, so a deployed copy has something real to say).
    """
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
    _copy_tokenizer(out, chat_template)
    if train:
        _memorize(model, out, train)
    model.save_pretrained(out, safe_serialization=True)
    return out


def _memorize(model: Any, tok_dir: Path, train: list[tuple[str, str]], steps: int = 600,
              lr: float = 3e-3) -> None:
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    batches = []
    for prompt, completion in train:
        p_ids = tok(prompt, add_special_tokens=False).input_ids
        c_ids = tok(completion, add_special_tokens=False).input_ids
        batches.append((torch.tensor([p_ids + c_ids]), torch.tensor(c_ids), len(p_ids)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    worst = [float("inf")] * len(batches)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread beats two fighting over 2 cores
    try:
        model.train()
        for step in range(steps):
            ids, targets, n_prompt = batches[step % len(batches)]
            # The vocabulary projection only where the loss is taken: the completion.
            hidden = model.model(input_ids=ids).last_hidden_state[0, n_prompt - 1:-1]
            per_token = torch.nn.functional.cross_entropy(model.lm_head(hidden), targets,
                                                          reduction="none")
            per_token.mean().backward()
            opt.step()
            opt.zero_grad()
            # Every token sure, not just the mean: one unsure token flips after f16 export.
            worst[step % len(batches)] = per_token.max().item()
            if max(worst) < 0.02:
                break
        model.eval()
    finally:
        torch.set_num_threads(threads)


def build_adapter(base: Path, out: Path, *, seed: int = 1, scale: float = 0.05) -> Path:
    """A LoRA adapter on ``base`` with random non-zero A and B (r=8, all linear layers).

    ``scale`` keeps the change small enough that a model trained to answer a prompt still
    answers it after the merge, while every merged weight differs from the base.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, init_lora_weights=False,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj"])
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(scale)
    peft_model.save_pretrained(out)
    return out
