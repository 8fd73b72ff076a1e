"""Recorded runs for the UI: run folders written with the engine's own EventWriter.

Timestamps come from a fake clock, so screens (and snapshots) are the same on every machine.
Each builder returns the run folder; ``python tests/ui/recorded.py OUT`` writes them all.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from engine import checklist, config, protocol
from engine.protocol import EventWriter
from web4tui.runfolder import RunFolder

T0 = 1_760_000_000.0  # a fixed start


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, s: float) -> None:
        self.t += s


def _writer(root: Path, name: str, clock: Clock) -> tuple[Path, EventWriter]:
    run = root / name
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.toml").write_text(config.dumps(config.defaults()))
    with mock.patch.object(protocol, "time", SimpleNamespace(time=clock)):
        w = EventWriter(run / "events.jsonl", name)
    w.emit = _clocked(w.emit, clock)  # type: ignore[method-assign]
    return run, w


def _clocked(emit, clock: Clock):  # noqa: ANN001, ANN202
    def wrapped(*a, **k):  # noqa: ANN002, ANN003, ANN202
        with mock.patch.object(protocol, "time", SimpleNamespace(time=clock)):
            return emit(*a, **k)
    return wrapped


def _hello(w: EventWriter) -> None:
    w.emit("hello", stage=None, engine_version="0.1.0", pid=4242, backend="torch",
           device="mps", python="3.11.9", argv=["engine", "work"])


TOKENS = {"model": "SmolLM2-135M-Instruct (embedded)",
          "all": {"records": 3300, "mean": 402.0, "p50": 390, "p95": 610, "max": 900,
                  "total": 1326600, "trained_tokens": 420000}}


def _sanity(w: EventWriter, clock: Clock) -> None:
    w.stage = "sanity"
    w.emit("stage_started", title="Sanity check", total=None)
    values = {"sanity.valid_jsonl": ("pass", "3,300 lines OK"),
              "sanity.fields": ("pass", "all present"),
              "sanity.avg_tokens": ("pass", "402 < 2048"),
              "sanity.loads": ("pass", "3,300 rendered"),
              "sanity.roundtrip": ("pass", "200/200 exact"),
              "sanity.samples": ("pass", "3 shown"),
              "sanity.totals": ("warn", "3,300 records, 1.33M tokens")}
    for i, (item, (status, value)) in enumerate(values.items()):
        clock.tick(0.4)
        w.emit("progress", done=i + 1, total=len(values), unit="checks", eta_s=0.4 * (6 - i))
        w.emit("check", item=item, status=status, value=value, target="",
               detail={"files": 5, "per_bucket": {"tool": 900, "style": 800}}
               if item == "sanity.totals" else TOKENS if item == "sanity.loads" else None)
    w.emit("log", level="info", message="tokenizer: SmolLM2-135M-Instruct (49152 tokens)")
    clock.tick(0.5)
    w.emit("stage_finished", status="ok", duration_s=3.1, summary={})


def _state(run: Path, **stages: str) -> None:
    """state.json as the engine leaves it (the runs screen reads it)."""
    (run / "state.json").write_text(json.dumps(
        {"stages": {s: {"status": st} for s, st in stages.items()}}))


def passing(root: Path) -> RunFolder:
    """Stage 1 passed (one warning); every other stage untouched."""
    clock = Clock()
    run, w = _writer(root, "passing", clock)
    _hello(w)
    _sanity(w, clock)
    w.close()
    _state(run, sanity="ok")
    return RunFolder(run)


def training(root: Path, steps: int = 300) -> RunFolder:
    """Sanity and a dry run passed; the mini fine-tune missed its eval targets, with advice."""
    clock = Clock()
    rng = random.Random(7)
    run, w = _writer(root, "training", clock)
    _hello(w)
    _sanity(w, clock)
    for stage, n in (("dry_run", steps), ("mini", steps)):
        w.stage = stage
        w.emit("stage_started", title=checklist.stage(stage).title, total=n)
        for step in range(1, n + 1):
            clock.tick(0.5)
            base = 0.4 + 3.6 * math.exp(-step / (n / 5)) if stage == "dry_run" else \
                1.3 + 0.2 * math.exp(-step / 80)
            w.emit("metric", step=step, values={"loss": base + rng.uniform(-0.15, 0.15),
                                                "lr": 2e-4, "grad_norm": 1.1,
                                                "tokens_per_s": 1850 + rng.uniform(-50, 50)})
            if step % 10 == 0:
                w.emit("progress", done=step, total=n, unit="steps", eta_s=(n - step) * 0.5)
                w.emit("memory", rss_gb=3.1 + step / n, device_gb=7.5 + 3 * step / n,
                       device_peak_gb=10.9, system_used_gb=24.0, system_total_gb=32.0,
                       budget_gb=12.0)
            if step % 100 == 0:
                w.emit("sample", step=step, bucket="tool", prompt="weather in Oslo?",
                       output='{"tool": "get_weather", "arguments": {"city": "Oslo"}}',
                       verdict="valid_json")
                w.emit("sample", step=step, bucket="guardrail", prompt="delete prod db",
                       output="I can't help with deleting a production database.",
                       verdict="refused")
                w.emit("sample", step=step, bucket="style", prompt="parse a date",
                       output="def parseDate(s): return s", verdict="naming_drift")
        if stage == "dry_run":
            w.emit("check", item="dry_run.loss_falls", status="pass", value="loss 0.84 < 1.0",
                   target="< 1.0", detail={"first": 4.0, "last": 0.84, "steps": n})
            w.emit("check", item="dry_run.no_nan", status="pass", value="0 NaN", target="",
                   detail=None)
            w.emit("check", item="dry_run.no_device_errors", status="pass", value="none",
                   target="", detail=None)
            w.emit("check", item="dry_run.memory", status="pass", value="peak 10.9 < 12.0 GB",
                   target="< 12 GB", detail=None)
            w.emit("artifact", kind="checkpoint", path=f"outputs/training/checkpoints/"
                   f"step-{n:06d}")
            w.emit("stage_finished", status="ok", duration_s=n * 0.5, summary={})
        else:
            w.emit("check", item="mini.loss_stable", status="pass", value="1.31 in 1.0-1.5",
                   target="", detail=None)
            w.emit("check", item="mini.tool_json", status="fail", value="6/10",
                   target="10/10", detail={"prose": ["t3", "t7", "t8", "t9"]})
            w.emit("check", item="mini.style_match", status="warn", value="8/10",
                   target="10/10", detail=None)
            w.emit("advice", rule="prose_not_json", symptom="prose instead of tool JSON",
                   action="add tool_neg examples", evidence={"tool_json": "6/10"})
            w.emit("advice", rule="naming_drift", symptom="naming drift",
                   action="add style examples", evidence=["parseDate: camelCase"])
            w.emit("error", message="Mini fine-tune missed its targets", detail=None,
                   hint="Follow the advice pane, then re-run the mini stage (x).")
            w.emit("stage_finished", status="failed", duration_s=n * 0.5, summary={})
    w.close()
    _state(run, sanity="ok", dry_run="ok", mini="failed")
    return RunFolder(run)


def failing(root: Path) -> RunFolder:
    """Stage 1 failed with an error and its hint."""
    clock = Clock()
    run, w = _writer(root, "failing", clock)
    _hello(w)
    w.stage = "sanity"
    w.emit("stage_started", title="Sanity check", total=None)
    w.emit("check", item="sanity.valid_jsonl", status="fail", value="2 bad lines",
           target="no bad lines", detail=["train/tool.jsonl:14: not JSON",
                                          "train/style.jsonl:3: not an object"])
    w.emit("error", message="Sanity check failed: 2 bad lines", detail="…",
           hint="Fix the listed lines (file:line) and run stage 1 again.")
    clock.tick(1.0)
    w.emit("stage_finished", status="failed", duration_s=1.0, summary={})
    w.close()
    _state(run, sanity="failed")
    return RunFolder(run)


BAD_LINES = [(f"data/train/part-{i // 40:02d}.jsonl", 3 + i, reason, message)
             for i, (reason, message) in enumerate(
                 [("invalid_json", "Expecting ',' delimiter at column 57"),
                  ("not_object", "expected a JSON object, got list"),
                  ("missing_field", "field 'output' is missing")] * 20)]


def gated(root: Path) -> RunFolder:
    """Stage 1 failed on 60 bad lines (listed in sanity/problems.jsonl); 2-8 blocked."""
    clock = Clock()
    run, w = _writer(root, "gated", clock)
    _hello(w)
    w.stage = "sanity"
    w.emit("stage_started", title="Sanity check", total=None)
    syntax = [b for b in BAD_LINES if b[2] != "missing_field"]
    fields = [b for b in BAD_LINES if b[2] == "missing_field"]

    def listed(rows):  # noqa: ANN001, ANN202 — the event lists a few; the file has them all
        return [{"where": f"{f}:{n}", "reason": r, "message": m} for f, n, r, m in rows[:5]]
    w.emit("check", item="sanity.valid_jsonl", status="fail", value=f"{len(syntax)} bad lines",
           target="no bad lines", detail={
               "files": 2, "lines": 140, "records": 80,
               "problems": {"invalid_json": 20, "not_object": 20},
               "explain": {"invalid_json": "not valid JSON", "not_object": "not a JSON object"},
               "listed": listed(syntax), "empty_files": [], "missing": []})
    w.emit("check", item="sanity.fields", status="fail", value=f"{len(fields)} records with "
           "field problems", target="", detail={
               "problems": {"missing_field": 20},
               "explain": {"missing_field": "a required field is missing"},
               "listed": listed(fields), "records": {"train/tool": 50, "train/style": 30}})
    tokens = {"model": "SmolLM2-135M-Instruct (embedded)",
              "all": {"records": 80, "mean": 402.5, "p50": 390, "p95": 610, "max": 700,
                      "total": 32200, "trained_tokens": 9100},
              "per_bucket": {"style": {"records": 30, "mean": 450.0, "p50": 440, "p95": 610,
                                       "max": 700, "total": 13500, "trained_tokens": 5200},
                             "tool": {"records": 50, "mean": 374.0, "p50": 370, "p95": 420,
                                      "max": 450, "total": 18700, "trained_tokens": 3900}},
              "over_seq_len": {"dry_run": 0, "mini": 0, "full": 0},
              "seq_len": {"dry_run": 1024, "mini": 2048, "full": 2048}}
    w.emit("check", item="sanity.loads", status="fail", value="60 of 140 training lines did "
           "not load", target="", detail=tokens)
    w.emit("check", item="sanity.avg_tokens", status="pass", value="mean 402 tokens",
           target="", detail=tokens)
    clock.tick(1.0)
    w.emit("stage_finished", status="failed", duration_s=1.0, summary={})
    for stage in checklist.STAGE_IDS[1:]:
        w.stage = stage
        w.emit("stage_started", title=checklist.stage(stage).title, total=None)
        w.emit("stage_finished", status="blocked", duration_s=0.0, summary={
            "blocked_by": "sanity.valid_jsonl", "need": "sanity", "run_first": "sanity",
            "reason": "needs 1. Sanity check, whose item “Valid JSONL” failed"})
    w.close()
    (run / "sanity").mkdir()
    (run / "sanity" / "problems.jsonl").write_text("".join(
        json.dumps({"file": f, "line": n, "reason": r, "field": None, "message": m}) + "\n"
        for f, n, r, m in BAD_LINES))
    _state(run, sanity="failed", **{s: "blocked" for s in checklist.STAGE_IDS[1:]})
    return RunFolder(run)


def cancelled(root: Path) -> RunFolder:
    """The dry run was stopped by the user midway."""
    clock = Clock()
    run, w = _writer(root, "cancelled", clock)
    _hello(w)
    _sanity(w, clock)
    w.stage = "dry_run"
    w.emit("stage_started", title="Dry run", total=300)
    for step in range(1, 41):
        clock.tick(0.5)
        w.emit("metric", step=step, values={"loss": 4 - step * 0.05, "tokens_per_s": 1800.0})
    w.emit("log", level="warning", message="stop requested: finishing step 40")
    w.emit("stage_finished", status="cancelled", duration_s=20.0,
           summary={"reason": "stopped on request"})
    w.close()
    _state(run, sanity="ok", dry_run="cancelled")
    return RunFolder(run)


def malformed(root: Path) -> RunFolder:
    """Good events among a broken line, an unknown type and a half-written last line."""
    clock = Clock()
    run, w = _writer(root, "malformed", clock)
    _hello(w)
    w.close()
    with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"broken json\n')
        fh.write('{"v": 1, "seq": 3, "ts": 1760000001, "type": "from_the_future", "x": 1}\n')
        fh.write("not json at all\n")
    clock.tick(1)
    run2, w = _writer(root, "malformed", clock)
    w.stage = "sanity"
    w.emit("stage_started", title="Sanity check", total=None)
    w.emit("check", item="sanity.valid_jsonl", status="pass", value="12 lines OK", target="",
           detail=None)
    w.close()
    with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"v": 1, "seq": 99, "ts": 1760000009, "run": "malformed", "stage": "sa')
    return RunFolder(run)


def dead(root: Path) -> RunFolder:
    """The engine was killed mid-stage: no stage_finished, no live pid, a log with the end."""
    clock = Clock()
    run, w = _writer(root, "dead", clock)
    _hello(w)
    _sanity(w, clock)
    w.stage = "dry_run"
    w.emit("stage_started", title="Dry run", total=300)
    w.emit("progress", done=20, total=300, unit="steps", eta_s=140)
    w.close()
    (run / "engine.log").write_text("2026-01-01 10:00:00 INFO engine: step 20\n"
                                    "Killed: out of memory (the kernel stopped the engine)\n")
    (run / "engine.pid").write_text("999999\n")  # a pid that is not alive
    _state(run, sanity="ok", dry_run="running")
    return RunFolder(run)


ALL = (passing, training, failing, gated, cancelled, malformed, dead)

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs")
    for build in ALL:
        print(build(out).root)
