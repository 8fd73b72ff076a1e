"""Scoring answers needs no training library: `web4tui evaluate --predictions` starts fast and
works where torch is absent; and nothing on the engine side imports the UI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scoring_and_advice_import_no_heavy_library_and_no_ui() -> None:
    code = ("import engine.evaluate, engine.evaluate.report, engine.evaluate.gates, "
            "engine.evaluate.sources, engine.evaluate.cli, engine.advice, engine.stages.eval, "
            "engine.stages.advice\nimport sys, json; print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    top = {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}
    assert not top & {"torch", "transformers", "peft", "llama_cpp", "ollama", "mlx",
                      "textual", "web4tui"}
