"""Evaluation as one call: records + a way to get answers → scored rows and metrics.

    result = evaluate(records, answer_fn, cfg)       # answer_fn(records) -> list[str]
    result = score_answers(records, answers, cfg)    # answers already in hand

Both give the same :class:`EvalResult` for the same answers, whatever produced them (an
adapter, a merged model, a GGUF, Ollama, a predictions file) — which is what makes the export
stage's parity check and ``web4tui evaluate --predictions`` comparable with a trained run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.evaluate.lint import Linter
from engine.evaluate.scorers import Rules, Verdict, extract_code, rule_for, score
from engine.records import Record, find_files, iter_lines, load_tools, parse_line, split_of

AnswerFn = Callable[[Sequence[Record]], list[str]]

#: (checklist item, metric, [eval] key of its target) for every scored stage-5 item.
TARGETS: tuple[tuple[str, str, str], ...] = (
    ("eval.tool_json_valid", "tool.json_valid", "tool_json_valid"),
    ("eval.tool_correct", "tool.tool_correct", "tool_correct"),
    ("eval.tool_neg", "tool_neg.no_tool_call", "tool_neg"),
    ("eval.style_lint", "style.lint_ok", "style_lint"),
    ("eval.style_ast", "style.ast_match", "style_ast"),
    ("eval.guardrail", "guardrail.accuracy", "guardrail_accuracy"),
    ("eval.mixed", "mixed.overall", "mixed"),
)

#: Per-bucket figures: (metric suffix, check name in the verdict).
FIGURES: dict[str, tuple[tuple[str, str], ...]] = {
    "tool": (("json_valid", "json_valid"), ("tool_correct", "tool_correct"),
             ("args_valid", "args_valid"), ("args_exact", "args_exact")),
    "tool_neg": (("no_tool_call", "no_tool_call"),),
    "style": (("syntax_ok", "syntax_ok"), ("lint_ok", "lint_ok"), ("ast_match", "ast_match")),
    "guardrail": (("accuracy", "decision_ok"),),
}
BUCKET_ORDER = ("tool", "tool_neg", "style", "guardrail", "mixed")


@dataclass
class Row:
    """One scored record."""

    record: Record
    answer: str
    verdict: Verdict
    prompt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {"id": r.id, "file": r.path, "line": r.line, "bucket": r.bucket,
                "rule": self.verdict.rule, "prompt": self.prompt if self.prompt is not None
                else r.user_text, "expected": r.output, "answer": self.answer,
                "passed": self.verdict.passed, "checks": self.verdict.checks,
                "reasons": self.verdict.reasons,
                "info": {k: v for k, v in self.verdict.info.items() if k != "code"}}


@dataclass
class EvalResult:
    rows: list[Row]
    metrics: dict[str, float | int]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def targets(self, cfg: dict[str, Any]) -> list[dict[str, Any]]:
        """Each stage-5 item: its metric, value, target and whether it is met (None: no data)."""
        out = []
        for item, metric, key in TARGETS:
            bucket = metric.split(".")[0]
            n = self.metrics.get(f"{bucket}.n", 0)
            value = self.metrics.get(metric) if n else None
            target = float(cfg["eval"][key])
            out.append({"item": item, "metric": metric, "value": value, "target": target,
                        "n": n, "met": None if value is None else value >= target - 1e-9})
        return out

    def all_met(self, cfg: dict[str, Any]) -> bool:
        return all(t["met"] is not False for t in self.targets(cfg))


def rules_for(cfg: dict[str, Any], tools: list[dict[str, Any]] | None = None,
              call_format: str | None = None) -> Rules:
    """The scoring rules; ``call_format`` is the tool-call format of the template that
    produced the answers (None: ``eval.tool_format``, whose ``auto`` reads the run's model)."""
    linter = Linter(cfg["eval"]["ruff_config"] or None)
    if tools is None:
        tools = load_tools(cfg["data"]["tools"])
    return Rules.from_config(cfg, tools, linter, call_format or configured_format(cfg))


def configured_format(cfg: dict[str, Any]) -> str:
    """``eval.tool_format``; ``auto`` = the format the configured model's template trains."""
    fmt = cfg["eval"]["tool_format"]
    if fmt != "auto":
        return fmt
    from engine import models
    from engine.render import Renderer

    tok = models.load_tokenizer(models.resolve(cfg["model"]["id"], cfg["model"]["cache_dir"]),
                                cfg["model"]["trust_remote_code"])
    return Renderer(tok, "", []).call_format


def load_records(paths: Sequence[str | Path]) -> tuple[list[Record], list[str]]:
    """Eval records under the paths, and every problem as ``file:line: message``."""
    files, problems = find_files(list(paths))
    records: list[Record] = []
    for f in files:
        for number, raw in iter_lines(f):
            rec, probs = parse_line(str(f), number, raw, split_of(f))
            problems += [f"{p.where}: {p.message}" for p in probs]
            if rec is not None:
                records.append(rec)
    if not files and not problems:
        problems.append("no JSONL files under " + ", ".join(map(str, paths)))
    return records, problems


def select(records: list[Record], per_bucket: int) -> list[Record]:
    """The first ``per_bucket`` records of each bucket (0 = all), in file order."""
    if per_bucket <= 0:
        return records
    seen: dict[str, int] = defaultdict(int)
    out = []
    for r in records:
        if seen[r.bucket] < per_bucket:
            seen[r.bucket] += 1
            out.append(r)
    return out


def score_answers(records: Sequence[Record], answers: Sequence[str], cfg: dict[str, Any], *,
                  rules: Rules | None = None, prompts: Sequence[str] | None = None,
                  source: str = "") -> EvalResult:
    """Score answers already produced (one per record, same order)."""
    if len(answers) != len(records):
        raise ValueError(f"{len(answers)} answers for {len(records)} records")
    rules = rules or rules_for(cfg)
    if isinstance(rules.lint, Linter):  # one ruff process for every style answer
        rules.lint.prime([extract_code(a, rules.language) for r, a in zip(records, answers)
                          if rule_for(r) == "style"])
    rows = [Row(r, a, score(r, a, rules), prompts[i] if prompts else None)
            for i, (r, a) in enumerate(zip(records, answers))]
    return EvalResult(rows, metrics(rows), source)


def evaluate(records: Sequence[Record], answer_fn: AnswerFn, cfg: dict[str, Any], *,
             rules: Rules | None = None, source: str = "", keep: Path | None = None,
             note: Callable[[str], None] | None = None) -> EvalResult:
    """Ask ``answer_fn`` for every record's answer, then score them (tool calls in the
    format of the template the source rendered its prompts with).

    ``keep``: a results folder; each answer is appended to its answers file as it arrives,
    and answers already there from an interrupted run of the same evaluation are reused
    (:mod:`engine.evaluate.kept`); ``note`` hears what was reused or why it was not.
    """
    if keep is None or not hasattr(answer_fn, "on_answer"):
        answers = answer_fn(records)
        prompts = getattr(answer_fn, "last_prompts", None)
    else:
        answers, prompts = _answer_kept(records, answer_fn, cfg, keep, note)
    if rules is None:
        renderer = getattr(answer_fn, "renderer", None)
        rules = rules_for(cfg, call_format=renderer.call_format if renderer else None)
    return score_answers(records, answers, cfg, rules=rules, prompts=prompts, source=source)


def _answer_kept(records: Sequence[Record], source: Any, cfg: dict[str, Any], folder: Path,
                 note: Callable[[str], None] | None) -> tuple[list[str], list[str] | None]:
    from engine.evaluate.kept import KeptAnswers, key_for

    kept = KeptAnswers(folder, key_for(records, source.label, cfg))
    have, said = kept.open(records)
    if said and note is not None:
        note(said)
    todo = [i for i in range(len(records)) if i not in have]
    progress = source.progress
    if progress is not None and have:  # count the kept answers as done, time only the rest
        source.progress = lambda done, total, eta: progress(done + len(have),
                                                            total + len(have), eta)
    source.on_answer = lambda j, text: kept.add(todo[j], records[todo[j]].id, text)
    try:
        new = source([records[i] for i in todo]) if todo else []
    finally:
        kept.close()
        source.on_answer, source.progress = None, progress
    answers = dict(have)
    answers.update(zip(todo, new))
    renderer = getattr(source, "renderer", None)
    if have and renderer is not None:  # the prompts of reused answers, rendered as they were
        prompts: list[str] | None = [renderer.render(r).prompt for r in records]
    else:
        prompts = getattr(source, "last_prompts", None) if not have else None
    # a stopped source leaves the rest unanswered; the stage is cancelled, never scored
    return [answers.get(i, "") for i in range(len(records))], prompts


def metrics(rows: Sequence[Row]) -> dict[str, float | int]:
    """Fractions per bucket (bucket = the record's task_type; mixed records count only under
    ``mixed.*``, per declared rule and overall) and an ``overall`` pass rate."""
    by_bucket: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_bucket[row.record.bucket].append(row)
    out: dict[str, float | int] = {"n": len(rows),
                                   "overall": _frac(r.verdict.passed for r in rows)}
    for bucket in BUCKET_ORDER:
        group = by_bucket.get(bucket, [])
        out[f"{bucket}.n"] = len(group)
        if bucket == "mixed":
            out["mixed.overall"] = _frac(r.verdict.passed for r in group)
            for rule in BUCKET_ORDER[:4]:
                sub = [r for r in group if r.verdict.rule == rule]
                out[f"mixed.{rule}.n"] = len(sub)
                out[f"mixed.{rule}"] = _frac(r.verdict.passed for r in sub)
            continue
        for name, check in FIGURES[bucket]:
            out[f"{bucket}.{name}"] = _frac(r.verdict.checks.get(check, False) for r in group)
        if bucket in ("tool", "style"):
            out[f"{bucket}.passed"] = _frac(r.verdict.passed for r in group)
        if bucket == "guardrail":
            out["guardrail.false_refusals"] = sum(
                1 for r in group if r.verdict.info.get("refused")
                and not r.verdict.info.get("should_refuse"))
            out["guardrail.missed_refusals"] = sum(
                1 for r in group if r.verdict.info.get("should_refuse")
                and not r.verdict.info.get("refused"))
    return out


def _frac(values: Any) -> float:
    vals = list(values)
    return round(sum(1 for v in vals if v) / len(vals), 4) if vals else 0.0


def points_apart(a: EvalResult, b: EvalResult) -> dict[str, float]:
    """Per stage-5 metric, how many points (percent) two evaluations differ — the export
    stage's parity check (GGUF vs merged model) reads the largest."""
    out = {}
    for _, metric, _ in TARGETS:
        if a.metrics.get(f"{metric.split('.')[0]}.n") and metric in a.metrics \
                and metric in b.metrics:
            out[metric] = round(abs(a.metrics[metric] - b.metrics[metric]) * 100, 2)
    out["overall"] = round(abs(a.metrics["overall"] - b.metrics["overall"]) * 100, 2)
    return out


def score_records(records: Sequence[Record], generate: Callable[[list[str]], list[str]],
                  cfg: dict[str, Any]) -> dict[str, float]:
    """The stage-5 figures of any text generator: ``generate(prompts) -> completions``.

    Prompts are rendered exactly as in training (the base model's chat template, tools
    included); returns each stage-5 metric that has records, as a fraction. The export stage
    compares a merged model and its GGUF with this.
    """
    from engine import models
    from engine.render import Renderer

    tok = models.load_tokenizer(models.resolve(cfg["model"]["id"], cfg["model"]["cache_dir"]),
                                cfg["model"]["trust_remote_code"])
    renderer = Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"]["tools"]))
    answers = generate([renderer.render(r).prompt for r in records])
    result = score_answers(records, answers, cfg,
                           rules=rules_for(cfg, call_format=renderer.call_format))
    return {t["metric"]: float(t["value"]) for t in result.targets(cfg) if t["value"] is not None}
