"""The tokens greedy generation stops at — one answer for every place that generates.

Training samples, stage 5, export's parity check (the merged model and its GGUF) all cut
answers at the same tokens, so their scores compare like with like: the tokenizer's eos, each
eos id of the model's config and generation config, and the chat markers that end a turn or
open the next one, where the vocabulary holds them as special tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Markers chat templates close a turn with, or open the next one with.
TURN_MARKERS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|EOT|>",
                "<|endoftext|>", "<|im_start|>")

__all__ = ["TURN_MARKERS", "config_eos_ids", "stop_ids", "stop_tokens"]


def config_eos_ids(model_dir: Path | None, model: Any = None) -> list[int]:
    """The eos ids a model folder's config.json / generation_config.json (or a loaded model's
    generation config) name."""
    ids: list[int] = []

    def add(value: Any) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int) and value >= 0:
            ids.append(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                add(v)

    for name in ("config.json", "generation_config.json"):
        p = Path(model_dir) / name if model_dir is not None else None
        if p is not None and p.is_file():
            try:
                add(json.loads(p.read_text(encoding="utf-8")).get("eos_token_id"))
            except (OSError, ValueError, AttributeError):
                pass
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        add(getattr(gen, "eos_token_id", None))
    return list(dict.fromkeys(ids))


def stop_ids(tok: Any, model_dir: Path | None = None, model: Any = None) -> list[int]:
    """Token ids of :func:`stop_tokens`, the tokenizer's eos first."""
    ids: list[int] = []
    if isinstance(getattr(tok, "eos_token_id", None), int):
        ids.append(tok.eos_token_id)
    ids += config_eos_ids(model_dir, model)
    vocab = tok.get_vocab() if hasattr(tok, "get_vocab") else {}
    special = set(getattr(tok, "all_special_tokens", None) or []) \
        | set(getattr(tok, "added_tokens_encoder", None) or {})
    ids += [vocab[m] for m in TURN_MARKERS if m in vocab and m in special]
    return list(dict.fromkeys(ids))


def stop_tokens(tok: Any, model_dir: Path | None = None, model: Any = None) -> list[str]:
    """Every token text generation stops at (see the module's docstring)."""
    texts = [tok.convert_ids_to_tokens(int(i)) for i in stop_ids(tok, model_dir, model)]
    return list(dict.fromkeys(t for t in texts if t)) or [tok.eos_token]
