"""Training examples per stage: which records, in what order, as which tokens.

Deterministic for a seed: the same config picks the same records and the same order on every
machine, which is what makes a resumed run end where an uninterrupted one would.
Prompt tokens are masked out of the loss; records longer than the stage's sequence length
follow the stated policy (``train.long_records``) and are counted.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from engine.examples import IGNORE, Example
from engine.records import Record, find_files, iter_lines, load_tools, parse_line, split_of
from engine.render import Renderer


class DataError(ValueError):
    """The data cannot train this stage; the message says why and what to do."""


@dataclass
class StageData:
    examples: list[Example]
    per_bucket: dict[str, int]
    dropped_long: int = 0
    truncated: int = 0
    skipped_invalid: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.examples)

    @property
    def trained_tokens(self) -> int:
        return sum(e.trained_tokens for e in self.examples)

    def summary(self) -> dict[str, Any]:
        return {"records": len(self.examples), "per_bucket": self.per_bucket,
                "tokens": self.tokens, "trained_tokens": self.trained_tokens,
                "dropped_long": self.dropped_long, "truncated": self.truncated,
                "skipped_invalid": self.skipped_invalid, "notes": self.notes}


def load_records(paths: list[str], split: str | None = "train") -> tuple[list[Record], int]:
    """Valid records under the paths (of one split), and how many lines were invalid."""
    files, _missing = find_files(paths)
    records, invalid = [], 0
    for f in files:
        if split is not None and split_of(f) != split:
            continue
        for number, raw in iter_lines(f):
            rec, problems = parse_line(str(f), number, raw, split_of(f))
            if rec is None:
                invalid += 1
            else:
                records.append(rec)
    return records, invalid


def select(records: list[Record], stage: str, cfg: dict[str, Any]) -> list[Record]:
    """The records a stage trains on, in a seeded order.

    dry_run: ``dry_run.samples`` records spread evenly over every bucket present;
    mini: ``mini.samples`` balanced over ``mini.buckets`` (tool, style, guardrail);
    full: everything.
    """
    rng = random.Random(f"{cfg['run']['seed']}:{stage}")
    by_bucket: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_bucket[r.bucket].append(r)
    if stage == "full":
        chosen = list(records)
    else:
        if stage == "dry_run":
            total, buckets = cfg["dry_run"]["samples"], sorted(by_bucket)
        else:
            total, buckets = cfg["mini"]["samples"], [b for b in cfg["mini"]["buckets"]
                                                      if b in by_bucket]
        chosen = _balanced(by_bucket, buckets, total, rng)
    rng.shuffle(chosen)
    return chosen


def _balanced(by_bucket: dict[str, list[Record]], buckets: list[str], total: int,
              rng: random.Random) -> list[Record]:
    """Round-robin over shuffled buckets, so small buckets give all they have."""
    pools = {b: rng.sample(by_bucket[b], len(by_bucket[b])) for b in buckets}
    chosen: list[Record] = []
    while len(chosen) < total and any(pools.values()):
        for b in buckets:
            if pools[b] and len(chosen) < total:
                chosen.append(pools[b].pop())
    return chosen


def tokenize(records: list[Record], renderer: Renderer, tok: Any, seq_len: int,
             policy: str) -> StageData:
    """Prompt + completion tokens per record, with the long-record policy applied."""
    examples: list[Example] = []
    dropped = truncated = 0
    for rec in records:
        r = renderer.render(rec)
        p = tok.encode(r.prompt, add_special_tokens=False)
        c = tok.encode(r.completion, add_special_tokens=False)
        if len(p) + len(c) > seq_len:
            if policy == "drop" or len(p) >= seq_len:
                dropped += 1  # truncating would leave nothing to learn from
                continue
            c = c[: seq_len - len(p)]
            truncated += 1
        examples.append(Example(list(p) + list(c), [IGNORE] * len(p) + list(c),
                                rec.bucket, rec.id))
    per_bucket = dict(Counter(e.bucket for e in examples))
    return StageData(examples, per_bucket, dropped_long=dropped, truncated=truncated)


def prepare(stage: str, cfg: dict[str, Any], tok: Any) -> StageData:
    """Load, select and tokenize a stage's data; refuses data with nothing to train on."""
    records, invalid = load_records(list(cfg["data"]["train"]))
    if not records:
        raise DataError(f"no valid training records under {', '.join(cfg['data']['train'])}; "
                        "run `web4tui check` to see why")
    renderer = Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"]["tools"]))
    chosen = select(records, stage, cfg)
    data = tokenize(chosen, renderer, tok, int(cfg[stage]["seq_len"]),
                    cfg["train"]["long_records"])
    data.skipped_invalid = invalid
    if invalid:
        data.notes.append(f"{invalid} invalid lines skipped (see `web4tui check`)")
    if data.dropped_long:
        data.notes.append(f"{data.dropped_long} records longer than {cfg[stage]['seq_len']} "
                          "tokens dropped")
    if data.truncated:
        data.notes.append(f"{data.truncated} records truncated to {cfg[stage]['seq_len']} tokens")
    if not data.examples or data.trained_tokens == 0:
        raise DataError(
            f"the {stage} stage has no trainable tokens: {len(chosen)} records selected, "
            f"{data.dropped_long} longer than {stage}.seq_len={cfg[stage]['seq_len']}. "
            f"Raise {stage}.seq_len or set train.long_records=\"truncate\"")
    return data


def probe_records(cfg: dict[str, Any]) -> list[Record]:
    """One held-out record per bucket for sample generations (the first of each eval file)."""
    records, _ = load_records(list(cfg["data"]["eval"]), split=None)
    seen: dict[str, Record] = {}
    for r in records:
        seen.setdefault(r.bucket, r)
    return [seen[b] for b in sorted(seen)]


