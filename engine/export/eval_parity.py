"""The "same eval on the GGUF within ±N points" check: one scorer, two ways to generate.

Stage 5 owns the scoring. This module owns the comparison and the two generate functions —
greedy decoding with the merged HF model and with llama.cpp on the quantized GGUF — and calls
the stage-5 scorer through one small interface::

    score_records(records: list[Record], generate: Generate, cfg: dict) -> dict[str, float]

where ``generate(prompts) -> completions`` and the result maps a metric name (the ``eval.*``
checklist names: tool_json_valid, tool_correct, ...) to a fraction in [0, 1]. The scorer is
stage 5's own :func:`engine.evaluate.core.score_records`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.records import Record

Generate = Callable[[list[str]], list[str]]


class Scorer(Protocol):
    def __call__(self, records: list[Record], generate: Generate,
                 cfg: dict[str, Any]) -> dict[str, float]: ...


def find_scorer() -> Scorer:
    """Stage 5's scorer, so both models are judged by the very rules stage 5 applies."""
    from engine.evaluate.core import score_records  # loads the scorers only when asked

    return score_records


@dataclass(frozen=True)
class Row:
    metric: str
    merged: float  # points (0-100)
    gguf: float
    ok: bool

    @property
    def diff(self) -> float:
        return self.gguf - self.merged


def compare(merged: dict[str, float], gguf: dict[str, float], points: float) -> list[Row]:
    """Each metric of the merged model against the GGUF, in points (fraction × 100)."""
    rows = []
    for metric in sorted(set(merged) | set(gguf)):
        if metric not in merged or metric not in gguf:
            rows.append(Row(metric, 100 * merged.get(metric, float("nan")),
                            100 * gguf.get(metric, float("nan")), False))
            continue
        m, g = 100 * merged[metric], 100 * gguf[metric]
        rows.append(Row(metric, m, g, abs(g - m) <= points + 1e-9))
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = [f"{'metric':<20}{'merged':>9}{'gguf':>9}{'diff':>8}"]
    for r in rows:
        mark = "" if r.ok else "  ✗"
        lines.append(f"{r.metric:<20}{r.merged:>9.1f}{r.gguf:>9.1f}{r.diff:>+8.1f}{mark}")
    return "\n".join(lines)


def hf_generate(model_dir: Path, *, max_new_tokens: int, stop_ids: list[int]) -> Generate:
    """Greedy decoding with the merged HF model (float32, the reference), batched with a KV
    cache by stage 5's generator — identical answers to one prompt at a time, several times
    faster. ``stop_ids`` is kept for the signature; the generator reads the model's own."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.evaluate.generate import generate_text

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def generate(prompts: list[str]) -> list[str]:
        return generate_text(model, tok, prompts, max_new_tokens=max_new_tokens)

    return generate


def gguf_generate(gguf: Path, model_dir: Path, *, max_new_tokens: int,
                  stops: list[str]) -> Generate:
    """Greedy decoding with llama.cpp on a GGUF, fed the HF tokenizer's ids for the prompt."""
    from transformers import AutoTokenizer

    from engine.export.parity import load_llama

    tok = AutoTokenizer.from_pretrained(model_dir)
    llm = load_llama(gguf, 4096, logits_all=False)

    def generate(prompts: list[str]) -> list[str]:
        outs = []
        for p in prompts:
            ids = tok.encode(p, add_special_tokens=False)  # the template holds the specials
            res = llm.create_completion(prompt=ids, max_tokens=max_new_tokens, temperature=0.0,
                                        top_k=1, stop=stops or None)
            outs.append(res["choices"][0]["text"])
        return outs

    return generate
