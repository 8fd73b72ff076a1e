"""Tiny random models with the default model's real tokenizer (nothing from a hub)."""

from __future__ import annotations

from pathlib import Path


def make_tiny_model(folder: Path, *, arch: str = "llama", seed: int = 0, layers: int = 2,
                    hidden: int = 64, rope_theta: float = 10000.0) -> Path:
    """A 2-layer model with the embedded SmolLM2 tokenizer, saved as an HF folder."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    from engine import models

    if (folder / "config.json").exists():
        return folder
    tok = models.load_tokenizer(models.resolve("default"))
    common = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                  num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=4096, tie_word_embeddings=True,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  # Larger than the usual 0.02 so that a few LoRA steps move the logits of a
                  # 64-wide model visibly (its RMSNorm caps the hidden state otherwise).
                  initializer_range=0.2, rope_theta=rope_theta)
    config = LlamaConfig(**common) if arch == "llama" else Qwen2Config(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_poisoned_model(folder: Path, poison: str) -> Path:
    """A tiny untied model whose input embeddings of ``poison``'s tokens are NaN: any record
    containing that text produces a NaN loss at exactly the step it is trained on."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine import models

    src = make_tiny_model(folder.with_name(folder.name + "-src"))
    model = AutoModelForCausalLM.from_pretrained(src, tie_word_embeddings=False)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    tok = models.load_tokenizer(src)
    ids = tok.encode(poison, add_special_tokens=False)
    with torch.no_grad():
        model.get_input_embeddings().weight[ids] = float("nan")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
