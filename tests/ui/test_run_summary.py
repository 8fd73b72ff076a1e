"""The runs screen's best eval score: read from the numbers checks carry, not their text."""

from __future__ import annotations

import json
from pathlib import Path

from engine.protocol import EventWriter
from web4tui.run_summary import best_eval
from web4tui.runfolder import RunFolder


def _eval_stage(w: EventWriter, checks: list[dict]) -> None:
    w.stage = "eval"
    w.emit("stage_started", title="Evaluation", total=None)
    for c in checks:
        w.emit("check", target="", detail=None, **c)
    w.emit("stage_finished", status="ok", duration_s=1.0, summary={})


def test_best_eval_is_the_mean_of_the_measured_shares_of_the_best_evaluation(tmp_path: Path
                                                                            ) -> None:
    run = tmp_path / "r"
    run.mkdir()
    w = EventWriter(run / "events.jsonl", "r")
    _eval_stage(w, [{"item": "eval.tool_json_valid", "status": "pass",
                     "value": "90.0% (9/10)", "measured": 0.9},
                    {"item": "eval.style_lint", "status": "fail", "value": "70.0% (7/10)",
                     "measured": 0.7}])
    # the text is for people: a number in it that is not the score must not count
    _eval_stage(w, [{"item": "eval.tool_json_valid", "status": "pass",
                     "value": "x 1000 (of 2 runs)", "measured": 0.95},
                    {"item": "eval.tool_format", "status": "pass",
                     "value": "qwen2: trained, and parsed by the template"},
                    {"item": "eval.logged", "status": "pass", "value": "eval_log.md"}])
    w.close()
    assert best_eval(RunFolder(run)) == 95.0


def test_an_events_file_from_before_measured_is_read_from_the_text(tmp_path: Path) -> None:
    run = tmp_path / "old"
    run.mkdir()
    lines = [{"type": "stage_started", "stage": "eval", "title": "Evaluation"},
             {"type": "check", "stage": "eval", "item": "eval.tool_json_valid",
              "status": "pass", "value": "96.0% (48/50)"},
             {"type": "check", "stage": "eval", "item": "eval.guardrail", "status": "pass",
              "value": "100.0% (20/20)"},
             {"type": "stage_finished", "stage": "eval", "status": "ok"}]
    (run / "events.jsonl").write_text("".join(
        json.dumps({"v": 1, "seq": i + 1, "ts": 1.0, "run": "old", **e}) + "\n"
        for i, e in enumerate(lines)))
    assert best_eval(RunFolder(run)) == 98.0
