"""Reading a dataset once: validate every line, render and count tokens, keep statistics.

Streams every file in batches: parse and validate each line (every problem kept with
file:line), render valid records through the chat template, count tokens with the model's
fast tokenizer (on a worker thread, overlapping the next batch's parsing) and keep only the
statistics. Stage 1 (:mod:`engine.stages.sanity`) turns the :class:`Report` into checks.
"""

from __future__ import annotations

import hashlib
import random
import time
from array import array
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from engine import models
from engine.context import StageContext
from engine.records import (
    DataFileError,
    Problem,
    Record,
    find_files,
    iter_lines,
    load_tools,
    parse_line,
    split_of,
)
from engine.render import Renderer

BATCH_RECORDS = 2048
#: Distinct answers whose token counts are remembered (refusals, tool calls and short
#: answers repeat across a dataset; each is encoded once). Bounded so memory stays flat.
ANSWER_CACHE = 50_000
ANSWER_CACHE_CHARS = 4096  # longer answers rarely repeat: not worth keeping


@dataclass
class BucketStats:
    tokens: array = field(default_factory=lambda: array("I"))
    trained: array = field(default_factory=lambda: array("I"))

    def summary(self) -> dict[str, Any]:
        return {"records": len(self.tokens), **describe(self.tokens),
                "trained_tokens": int(sum(self.trained))}


def describe(values: Iterable[int]) -> dict[str, Any]:
    data = sorted(values)
    if not data:
        return {"mean": 0.0, "p50": 0, "p95": 0, "max": 0, "total": 0}

    def pct(p: float) -> int:
        return data[min(len(data) - 1, int(round(p * (len(data) - 1))))]

    total = sum(data)
    return {"mean": round(total / len(data), 1), "p50": pct(0.5), "p95": pct(0.95),
            "max": data[-1], "total": total}


@dataclass
class Report:
    """Everything stage 1 found; the CLI prints it, the stage turns it into checks."""

    files: list[str] = field(default_factory=list)
    empty_files: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    lines: int = 0
    records: Counter = field(default_factory=Counter)  # (split, bucket) -> count
    buckets: dict[str, BucketStats] = field(default_factory=dict)  # train split
    eval_tokens: BucketStats = field(default_factory=BucketStats)
    over_seq: Counter = field(default_factory=Counter)  # stage -> records over its seq_len
    roundtrip: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    model_dir: str = ""
    template: dict[str, Any] = field(default_factory=dict)
    load_error: str | None = None
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        return dict(Counter(p.reason for p in self.problems))

    def train_tokens(self) -> BucketStats:
        all_ = BucketStats()
        for b in self.buckets.values():
            all_.tokens.extend(b.tokens)
            all_.trained.extend(b.trained)
        return all_

    def to_dict(self) -> dict[str, Any]:
        train = self.train_tokens()
        return {
            "files": self.files, "empty_files": self.empty_files, "missing": self.missing,
            "lines": self.lines, "seconds": round(self.seconds, 2),
            "model": self.model, "template": self.template,
            "records": {f"{s}/{b}": n for (s, b), n in sorted(self.records.items())},
            "problem_counts": self.counts(),
            "problems": [p.to_dict() for p in self.problems],
            "tokens": {"train": train.summary(),
                       "per_bucket": {b: s.summary() for b, s in sorted(self.buckets.items())},
                       "eval": self.eval_tokens.summary()},
            "over_seq_len": dict(self.over_seq), "roundtrip": self.roundtrip,
            "samples": self.samples, "load_error": self.load_error,
        }


def seq_lens(cfg: dict[str, Any]) -> dict[str, int]:
    return {s: int(cfg[s]["seq_len"]) for s in ("dry_run", "mini", "full")}


def check_data(paths: list[str], cfg: dict[str, Any], ctx: StageContext) -> Report:
    """Read, validate, render and count every record under ``paths``."""
    t0 = time.monotonic()
    report = Report()
    files, report.missing = find_files(paths)
    report.files = [str(f) for f in files]
    for m in report.missing:
        ctx.emit("log", level="error", message=m)

    report.model = models.describe(cfg)
    try:
        def progress(done: int, total: int, msg: str) -> None:
            ctx.emit("progress", done=done, total=total, unit="model steps", eta_s=None)
            ctx.emit("log", level="info", message=f"model: {msg}")
        folder = models.resolve(cfg["model"]["id"], cfg["model"]["cache_dir"], progress)
        report.model_dir = str(folder)
        tok = models.load_tokenizer(folder, cfg["model"]["trust_remote_code"])
        renderer = Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"]["tools"]))
    except (models.ModelError, ValueError, OSError) as exc:
        report.load_error = str(exc)
        ctx.emit("error", message=f"could not load the model's tokenizer: {exc}",
                 detail=None, hint="Check model.id in the config (see `web4tui check --help`).")
        _scan_without_tokenizer(files, report, cfg, ctx)
        report.seconds = time.monotonic() - t0
        return report

    report.template = {"chat_template": renderer.has_template,
                       "tools_via_template": renderer.native_tools}
    scanner = _Scanner(report, cfg, renderer, tok, ctx)
    scanner.scan(files)
    report.template["fast_render"] = renderer.fast
    report.template["frame_counted_once"] = scanner.by_parts
    report.seconds = time.monotonic() - t0
    return report


def _scan_without_tokenizer(files: list[Path], report: Report, cfg: dict[str, Any],
                            ctx: StageContext) -> None:
    """Still list every bad line when the tokenizer is unavailable."""
    scanner = _Scanner(report, cfg, None, None, ctx)
    scanner.scan(files)


class _Scanner:
    def __init__(self, report: Report, cfg: dict[str, Any], renderer: Renderer | None,
                 tok: Any, ctx: StageContext) -> None:
        self.report = report
        self.cfg = cfg
        self.renderer = renderer
        self.tok = tok
        self.ctx = ctx
        self.fast = getattr(tok, "backend_tokenizer", None) if tok is not None else None
        self.seq_lens = seq_lens(cfg)
        self.max_depth = int(cfg["data"]["max_depth"])
        self.max_seq = max(self.seq_lens.values())
        self.max_token_bytes = _max_token_bytes(tok) if tok is not None else 64
        self.seen: dict[bytes, str] = {}
        sc = cfg["sanity"]
        self.rng = random.Random(cfg["run"]["seed"])
        self.reservoir: list[Record] = []
        self.reservoir_size = max(sc["roundtrip_samples"], sc["show_samples"])
        self.valid = 0
        self.verified = False
        self.by_parts = False
        self.frame_counts: dict[tuple[str, ...], tuple[int, ...]] = {}
        # frame token counts of records showing the global tool listing (or none), by
        # shows_tools: most records, and the frame's key would cost a JSON dump per record
        self.shared_frames: dict[bool, tuple[int, int, int, int]] = {}
        self.answer_counts: dict[tuple[str, str], int] = {}  # (expect, output) -> tokens
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")
        self.pending: tuple[list[Record], Future[tuple[list[int], list[int]]]] | None = None

    # -- reading ------------------------------------------------------------------------
    def scan(self, files: list[Path]) -> None:
        total_bytes = sum(f.stat().st_size for f in files) or 1
        done_bytes = 0
        started = time.monotonic()
        last_emit = 0.0
        for f in files:
            self.ctx.raise_if_stopped()
            if f.stat().st_size == 0:
                self.report.empty_files.append(str(f))
            split = split_of(f)
            batch: list[Record] = []
            try:
                for number, raw in iter_lines(f):
                    self.report.lines += 1
                    rec = self._parse(str(f), number, raw, split)
                    if rec is not None:
                        batch.append(rec)
                    if len(batch) >= BATCH_RECORDS:
                        self._count(batch)
                        batch = []
                        self.ctx.raise_if_stopped()
                        now = time.monotonic()
                        if now - last_emit > 0.5:
                            last_emit = now
                            self._progress(done_bytes, total_bytes, started, f)
            except OSError as exc:  # unreadable part way (permissions changed, I/O error)
                self.report.missing.append(str(exc) if isinstance(exc, DataFileError)
                                           else f"{f}: cannot be read ({exc.strerror or exc})")
            self._count(batch)
            done_bytes += f.stat().st_size
            self._progress(done_bytes, total_bytes, started, f)
        self._drain()
        self.pool.shutdown()
        self._finish()

    def _progress(self, done: int, total: int, started: float, f: Path) -> None:
        elapsed = time.monotonic() - started
        eta = elapsed / done * (total - done) if done else None
        self.ctx.emit("progress", done=round(done / 1e6, 2), total=round(total / 1e6, 2),
                      unit="MB", eta_s=round(eta, 1) if eta is not None else None)

    def _parse(self, path: str, number: int, raw: bytes, split: str) -> Record | None:
        rec, problems = parse_line(path, number, raw, split, max_depth=self.max_depth)
        if problems:
            self.report.problems.extend(problems)
            return None
        assert rec is not None
        key = hashlib.blake2b("\x1f".join((rec.bucket, rec.instruction, rec.input, rec.output))
                              .encode("utf-8"), digest_size=16).digest()
        first = self.seen.get(key)
        if first is not None:
            self.report.problems.append(Problem(path, number, "duplicate",
                                                f"exact duplicate of {first}"))
            if "duplicate" not in self.cfg["sanity"]["warn_only"]:
                return None
        else:
            self.seen[key] = f"{path}:{number}"
        if len(raw) > self.max_seq * self.max_token_bytes:
            # Certainly over every sequence length: don't spend seconds tokenizing 50 MB.
            self.report.problems.append(Problem(
                path, number, "too_long",
                f"{len(raw):,} bytes, far over the longest sequence length ({self.max_seq} "
                "tokens); shorten or split the record"))
            return None
        return rec

    # -- counting -----------------------------------------------------------------------
    def _count(self, batch: list[Record]) -> None:
        """Count a batch's tokens on the worker thread while the next batch is being read.

        The Rust tokenizer releases the GIL, so parsing and validating batch N+1 in Python
        overlaps with encoding batch N; results are accounted in order, one batch behind.
        """
        if not batch:
            return
        self.valid += len(batch)
        for rec in batch:
            self.report.records[(rec.split, rec.bucket)] += 1
            self._sample(rec)
        if self.renderer is None:
            return
        if not self.verified:
            self.renderer.verify(batch[:64])
            self.by_parts = self.renderer.fast and self._parts_match(batch[:64])
            self.verified = True
        self._drain()
        self.pending = (batch, self.pool.submit(self._encode, batch))

    def _drain(self) -> None:
        if self.pending is not None:
            batch, future = self.pending
            self.pending = None
            self._account(batch, *future.result())

    def _encode(self, batch: list[Record]) -> tuple[list[int], list[int]]:
        if self.by_parts:
            return self._lengths_by_parts(batch)
        rendered = [self.renderer.render(r) for r in batch]  # type: ignore[union-attr]
        return (self._lengths([r.prompt for r in rendered]),
                self._lengths([r.completion for r in rendered]))

    def _account(self, batch: list[Record], prompt_n: list[int], compl_n: list[int]) -> None:
        warn_long = "too_long" in self.cfg["sanity"]["warn_only"]
        for rec, p, c in zip(batch, prompt_n, compl_n):
            n = p + c
            for stage, limit in self.seq_lens.items():
                if n > limit:
                    self.report.over_seq[stage] += 1
            if n > self.max_seq:
                self.report.problems.append(Problem(
                    rec.path, rec.line, "too_long",
                    f"{n} tokens, over the longest sequence length ({self.max_seq}); the "
                    "trainer would have to cut it" + ("" if warn_long else
                                                      " — shorten or split the record")))
            if rec.split == "train":
                stats = self.report.buckets.setdefault(rec.bucket, BucketStats())
            else:
                stats = self.report.eval_tokens
            stats.tokens.append(n)
            stats.trained.append(c)

    def _lengths_by_parts(self, batch: list[Record]) -> tuple[list[int], list[int]]:
        """Token counts with the template frame counted once per frame, not per record.

        The frame (system prompt, tool listing, role markers) is the same for thousands of
        records and can be most of their tokens; only the record's own text is encoded.
        Exact because the frame meets the record's text at special tokens and line breaks,
        which the tokenizer never merges across — verified on the first batch by
        :meth:`_parts_match`, else every record is encoded whole.
        """
        users = self._lengths([r.user_text for r in batch])
        outs = self._answer_lengths(batch)
        prompt_n, compl_n = [], []
        for rec, u, o in zip(batch, users, outs):
            a, b, c, d = self._frame_counts(rec)
            prompt_n.append(a + u + b)
            compl_n.append(c + o + d)
        return prompt_n, compl_n

    def _answer_lengths(self, batch: list[Record]) -> list[int]:
        """Tokens of each record's answer; an answer seen before (same output, same rules)
        is neither rendered nor encoded again."""
        cache = self.answer_counts
        keys = [(r.expect, r.output) for r in batch]
        todo: dict[tuple[str, str], str] = {}
        for rec, key in zip(batch, keys):
            if key not in cache and key not in todo:
                todo[key] = self.renderer.answer(rec)[0]  # type: ignore[union-attr]
        counts = dict(zip(todo, self._lengths(list(todo.values()))))
        out = [cache[k] if k in cache else counts[k] for k in keys]
        if len(cache) > ANSWER_CACHE:
            cache.clear()
        cache.update((k, n) for k, n in counts.items() if len(k[1]) <= ANSWER_CACHE_CHARS)
        return out

    def _frame_counts(self, rec: Record) -> tuple[int, int, int, int]:
        own = rec.extra.get("tools")
        shared = not (isinstance(own, list) and own)  # the renderer's global listing, or none
        if shared and rec.shows_tools in self.shared_frames:
            return self.shared_frames[rec.shows_tools]
        counts = self._frame_counts_of(rec)
        if shared:
            self.shared_frames[rec.shows_tools] = counts
        return counts

    def _frame_counts_of(self, rec: Record) -> tuple[int, int, int, int]:
        frame = self.renderer.frame(rec)  # type: ignore[union-attr]
        counts = self.frame_counts.get(frame)
        if counts is None:
            counts = tuple(self._lengths(list(frame)))  # type: ignore[assignment]
            self.frame_counts[frame] = counts  # type: ignore[assignment]
        return counts  # type: ignore[return-value]

    def _parts_match(self, sample: list[Record]) -> bool:
        for rec in sample:
            a, b, c, d = self.renderer.frame(rec)  # type: ignore[union-attr]
            out = self.renderer.answer(rec)[0]  # type: ignore[union-attr]
            whole = self._ids(a + rec.user_text + b) + self._ids(c + out + d)
            parts = (self._ids(a) + self._ids(rec.user_text) + self._ids(b)
                     + self._ids(c) + self._ids(out) + self._ids(d))
            if whole != parts:
                return False
        return True

    def _ids(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False)) if text else []

    def _lengths(self, texts: list[str]) -> list[int]:
        if self.fast is not None:
            encode = getattr(self.fast, "encode_batch_fast", None) or self.fast.encode_batch
            return [len(e) for e in encode(texts, add_special_tokens=False)]
        return [len(self.tok.encode(t, add_special_tokens=False)) for t in texts]

    def _sample(self, rec: Record) -> None:
        """Reservoir sampling: a uniform, seeded sample of valid records in one pass."""
        if len(self.reservoir) < self.reservoir_size:
            self.reservoir.append(rec)
        else:
            j = self.rng.randrange(self.valid)
            if j < self.reservoir_size:
                self.reservoir[j] = rec

    # -- round-trip and samples ---------------------------------------------------------
    def _finish(self) -> None:
        self.report.problems.sort(key=lambda p: (p.path, p.line))
        if self.renderer is None or not self.reservoir:
            return
        sc = self.cfg["sanity"]
        picks = self.reservoir[: sc["roundtrip_samples"]]
        failures = []
        for rec in picks:
            r = self.renderer.render(rec)
            text = r.prompt + r.completion
            ids = self.tok.encode(text, add_special_tokens=False)
            back = self.tok.decode(ids, skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
            if back != text:
                at = next((i for i, (a, b) in enumerate(zip(text, back)) if a != b),
                          min(len(text), len(back)))
                failures.append({"record": f"{rec.path}:{rec.line}", "at_char": at,
                                 "expected": text[max(0, at - 20): at + 20],
                                 "got": back[max(0, at - 20): at + 20]})
        self.report.roundtrip = {"checked": len(picks), "failed": len(failures),
                                 "examples": failures[:5]}
        shown = list(self.reservoir)
        random.Random(self.cfg["run"]["seed"] + 1).shuffle(shown)
        for rec in shown[: sc["show_samples"]]:
            r = self.renderer.render(rec)
            p_ids = self.tok.encode(r.prompt, add_special_tokens=False)
            c_ids = self.tok.encode(r.completion, add_special_tokens=False)
            self.report.samples.append({
                "record": f"{rec.path}:{rec.line}", "id": rec.id, "bucket": rec.bucket,
                "prompt": r.prompt, "completion": r.completion,
                "prompt_tokens": len(p_ids), "trained_tokens": len(c_ids),
                "trained_pieces": self.tok.convert_ids_to_tokens(c_ids[:48]),
            })


def _max_token_bytes(tok: Any) -> int:
    try:
        vocab = tok.get_vocab()
    except Exception:
        return 64
    return max(16, max((len(t.encode("utf-8")) for t in vocab), default=16))
