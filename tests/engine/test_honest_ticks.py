"""Stage 1 measures each item on the training split: eval records never stand in for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
SMALL = ["--set", "sanity.expected_records_min=0", "--set", "sanity.expected_tokens_min=0"]


def check_json(*args: str) -> tuple[int, dict[str, dict]]:
    proc = subprocess.run([sys.executable, "-m", "web4tui", "check", *args, "--json", *SMALL],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    out = json.loads(proc.stdout)
    return proc.returncode, {c["item"]: c for c in out["checks"]}


def test_a_missing_training_folder_passes_nothing_on_the_eval_records(tmp_path: Path) -> None:
    code, checks = check_json("--set", f"data.train=['{tmp_path / 'nowhere'}']",
                              "--set", f"data.eval=['{FIX / 'eval'}']")
    assert code == 1
    assert [i for i, c in checks.items() if c["status"] == "pass"] == []
    assert checks["sanity.loads"]["status"] == "fail"
    assert checks["sanity.loads"]["value"] == "no training records to render"
    assert checks["sanity.fields"]["status"] == "fail"
    assert checks["sanity.avg_tokens"]["status"] == "fail"
    assert checks["sanity.roundtrip"]["status"] == checks["sanity.samples"]["status"] == "skip"


def test_loads_without_errors_fails_when_most_training_lines_do_not_load(tmp_path: Path) -> None:
    good = {"task_type": "tool_neg", "instruction": "Explain routing", "input": "",
            "output": "Routes map paths to handlers."}
    lines = [json.dumps(good), "{not json", "[1, 2]", '"text"', json.dumps({"task_type": "x"}),
             json.dumps({**good, "output": 3}), "{\"a\": "]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    code, checks = check_json(str(tmp_path / "train.jsonl"))
    assert code == 1
    assert checks["sanity.loads"]["status"] == "fail"
    assert checks["sanity.loads"]["value"] == "6 of 7 training lines did not load"
