"""The prompts exports are checked on: held-out eval records, rendered as the model sees them.

A deterministic sample balanced over buckets, rendered with the same :class:`Renderer` that
training and evaluation use (chat template, system prompt, tools) — so parity is measured on
the text the deployed model will actually get.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from engine.records import (
    Record,
    find_files,
    iter_lines,
    load_tools,
    parse_line,
    split_of,
)
from engine.render import Renderer

#: Used when no eval records are configured: still a chat-rendered coder prompt or two.
FALLBACK = ("Write a Python function that reverses a string.",
            "Deploy checkout-api v1.2.3 to staging.",
            "What does HTTP status 429 mean?")


def eval_records(cfg: dict[str, Any]) -> list[Record]:
    files, _missing = find_files(list(cfg["data"]["eval"]))
    out: list[Record] = []
    for f in files:
        for number, raw in iter_lines(f):
            rec, _problems = parse_line(str(f), number, raw, split_of(f))
            if rec is not None:
                out.append(rec)
    return out


def sample(records: list[Record], n: int, seed: int) -> list[Record]:
    """Up to ``n`` records, round-robin over buckets, reproducible for a seed."""
    rng = random.Random(seed)
    by_bucket: dict[str, list[Record]] = {}
    for r in records:
        by_bucket.setdefault(r.expect, []).append(r)
    for recs in by_bucket.values():
        rng.shuffle(recs)
    picked: list[Record] = []
    while len(picked) < n and any(by_bucket.values()):
        for b in sorted(by_bucket):
            if by_bucket[b] and len(picked) < n:
                picked.append(by_bucket[b].pop())
    return picked


def renderer(model_dir: Path, cfg: dict[str, Any]) -> Renderer:
    from engine import models

    tok = models.load_tokenizer(model_dir, cfg["model"].get("trust_remote_code", False))
    return Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"].get("tools")))


def parity_prompts(model_dir: Path, cfg: dict[str, Any], n: int) -> tuple[list[str], list[Record]]:
    """(rendered prompts, the records they came from) for the export checks."""
    rend = renderer(model_dir, cfg)
    recs = sample(eval_records(cfg), n, cfg["run"]["seed"])
    if recs:
        return [rend.prompt_only(r) for r in recs], recs
    prompts = []
    for text in FALLBACK[:max(1, n)]:
        msgs, _tools = rend.messages(text, None)
        prompts.append(rend.tok.apply_chat_template(msgs, tokenize=False,
                                                    add_generation_prompt=True))
    return prompts, []
