"""Scoring answers needs no training library: `web4tui evaluate --predictions` starts fast and
works where torch is absent; training on MLX needs no torch; and nothing on the engine side
imports the UI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def top_level_modules_after(imports: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing ``imports``."""
    code = f"import {imports}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    return {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}


def test_scoring_and_advice_import_no_heavy_library_and_no_ui() -> None:
    top = top_level_modules_after(
        "engine.evaluate, engine.evaluate.report, engine.evaluate.gates, "
        "engine.evaluate.sources, engine.evaluate.cli, engine.advice, engine.stages.eval, "
        "engine.stages.advice")
    assert not top & {"torch", "transformers", "peft", "llama_cpp", "ollama", "mlx",
                      "textual", "web4tui"}


def test_the_training_stages_loop_and_mlx_backend_import_no_torch() -> None:
    top = top_level_modules_after(
        "engine.stages.dry_run, engine.stages.mini, engine.stages.full, "
        "engine.training.loop, engine.backends.mlx_lora")
    assert not top & {"torch", "transformers", "peft", "textual", "web4tui"}
