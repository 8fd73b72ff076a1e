"""Proof that a GGUF is the model it came from: llama.cpp against Hugging Face, token by token.

Two things must agree:

- the tokenizer: llama.cpp turns each prompt (and a few probe texts with digits, code,
  unicode and odd whitespace) into exactly the ids the HF tokenizer gives — this is what
  proves ``tokenizer.ggml.pre`` and the special tokens right;
- the model: for every position of every prompt, fed the same ids, both pick the same greedy
  next token. The agreement and the largest absolute logit difference are reported.

One prompt at a time, so memory holds one prompt's logits, not all of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.export import Progress, no_progress

log = logging.getLogger(__name__)

#: Texts that catch a wrong pre-tokenizer: digit runs, contractions, code, unicode, whitespace.
PROBES = (
    "def add(a, b):\n    return a + b  # 12345 + 67890 = 80235\n",
    "I'm sure they'll say it's fine; we've done it 3 times.\n\n\tTabbed\r\nCRLF",
    "naïve café — 東京 2024年 — emoji 🚀✨ — ÀÉÎÕÜ",
    '{"tool": "deploy_service", "arguments": {"replicas": 8, "version": "v3.12.15"}}',
    "    indented    spaces   \n\n\n   trailing   ",
)


@dataclass
class Side:
    """One GGUF's agreement with the HF model."""

    name: str
    positions: int = 0
    agree: int = 0
    max_abs_diff: float = 0.0
    worst: dict[str, Any] = field(default_factory=dict)

    @property
    def agreement(self) -> float:
        return self.agree / self.positions if self.positions else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"gguf": self.name, "positions": self.positions, "agree": self.agree,
                "agreement": round(self.agreement, 5),
                "max_abs_logit_diff": round(self.max_abs_diff, 5), "worst": self.worst}


@dataclass
class ParityReport:
    prompts: int
    logit_scale: float
    hf_dtype: str
    sides: list[Side]
    tokenizer_checked: int = 0
    tokenizer_mismatches: list[dict[str, Any]] = field(default_factory=list)

    def side(self, name: str) -> Side:
        return next(s for s in self.sides if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"prompts": self.prompts, "hf_dtype": self.hf_dtype,
                "max_abs_logit": round(self.logit_scale, 4),
                "tokenizer_texts_checked": self.tokenizer_checked,
                "tokenizer_mismatches": self.tokenizer_mismatches[:5],
                "sides": [s.to_dict() for s in self.sides]}


def load_llama(path: Path, n_ctx: int, *, logits_all: bool = True, threads: int = 0) -> Any:
    import os

    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(n_ctx, 512),
                 logits_all=logits_all, verbose=False, seed=0,
                 n_threads=threads or max(1, (os.cpu_count() or 2)), n_gpu_layers=0)


def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def hf_dtype_for(model_dir: Path) -> str:
    """float32 for models whose weights fit comfortably; bfloat16 above ~2B parameters."""
    size = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    return "float32" if size < 5e9 else "bfloat16"


def next_token_parity(hf_dir: Path, ggufs: dict[str, Path], prompts: list[str], *,
                      max_tokens: int = 256, probes: Sequence[str] = PROBES,
                      progress: Progress = no_progress,
                      stop: Callable[[], bool] = lambda: False) -> ParityReport:
    """Compare each GGUF in ``ggufs`` (name → path) with the HF model on ``prompts``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    dtype = hf_dtype_for(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=getattr(torch, dtype))
    model.eval()
    encoded = [tok(p).input_ids[:max_tokens] for p in prompts]
    n_ctx = max([len(e) for e in encoded] + [16]) + 8
    llamas = {name: load_llama(path, n_ctx) for name, path in ggufs.items()}
    sides = [Side(name) for name in ggufs]
    report = ParityReport(len(prompts), 0.0, dtype, sides)

    # Tokenizer: llama.cpp with the model's own add-BOS rule and special tokens parsed, as
    # Ollama tokenizes a rendered prompt.
    first = next(iter(llamas.values()))
    for i, text in enumerate(list(prompts) + list(probes)):
        want = tok(text).input_ids
        got = first.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        report.tokenizer_checked += 1
        if got != want:
            at = _first_difference(got, want)
            report.tokenizer_mismatches.append({
                "text": text[:80], "at": at,
                "hf": tok.convert_ids_to_tokens(want[at:at + 4]),
                "llama_cpp": [first.detokenize([t]).decode("utf-8", "replace")
                              for t in got[at:at + 4]]})

    for i, ids in enumerate(encoded):
        if stop():
            break
        with torch.no_grad():
            hf = model(torch.tensor([ids])).logits[0].float().numpy()
        report.logit_scale = max(report.logit_scale, float(np.abs(hf).max()))
        hf_top = hf.argmax(-1)
        for side, llm in zip(sides, llamas.values()):
            llm.reset()
            llm.eval(ids)
            ll = np.asarray(llm.scores[:len(ids)], dtype=np.float32)
            top = ll.argmax(-1)
            side.positions += len(ids)
            side.agree += int((top == hf_top).sum())
            diff = np.abs(ll[:, :hf.shape[1]] - hf[:, :ll.shape[1]])
            worst = float(diff.max())
            if worst > side.max_abs_diff:
                pos = int(diff.max(axis=1).argmax())
                side.max_abs_diff = worst
                side.worst = {"prompt": i, "position": pos,
                              "hf_token": tok.convert_ids_to_tokens(int(hf_top[pos])),
                              "gguf_token": tok.convert_ids_to_tokens(int(top[pos]))}
        progress(i + 1, len(encoded), "comparing next-token logits")
    for llm in llamas.values():
        llm.close()
    del model
    log.info("parity: %s", json.dumps(report.to_dict()))
    return report
