"""Predictions files get the records' reader discipline: any bad line is bad input (exit 2)
named by file:line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.evaluate.sources import PredictionsSource, SourceError

ROOT = Path(__file__).resolve().parents[2]
GOOD = b'{"id": "a", "answer": "fine"}\n'
BAD = {
    b'{"id": "b", "answer": "caf\xe9"}': "not valid UTF-8",
    b'{"id": "b", "answer": "\\ud800"}': "lone surrogate",
    b"[" * 5000: "nested deeper",
    b'{"id": "b", "answer": "x", "answer": "y"}': "same key twice",
}


@pytest.mark.parametrize("line", list(BAD))
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: bytes) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(GOOD + line + b"\n")
    with pytest.raises(SourceError, match=rf"{path}:2: .*{BAD[line]}"):
        PredictionsSource(path)


def test_evaluate_exits_2_on_an_undecodable_predictions_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(GOOD + b'{"id": "b", "answer": "\xff"}\n')
    records = tmp_path / "eval.jsonl"
    records.write_text('{"id": "a", "task_type": "tool_neg", "instruction": "Say hi", '
                       '"input": "", "output": "Hi."}\n')
    proc = subprocess.run([sys.executable, "-m", "web4tui", "evaluate", str(records),
                           "--predictions", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{path}:2: not valid UTF-8" in proc.stderr and "Traceback" not in proc.stderr
