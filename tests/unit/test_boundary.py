"""The UI never imports the training libraries; the engine never imports the UI.

From the engine the UI side imports only the stdlib-only modules it shares with it: the event
protocol, the checklist, the run-folder layout, the words of the commands and the text of
events (:data:`UI_MAY_IMPORT`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "peft", "mlx", "mlx_lm", "llama_cpp")
UI_MAY_IMPORT = ("engine.protocol", "engine.checklist", "engine.run_layout", "engine.commands",
                 "engine.event_text")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json;"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_ui_side_never_imports_training_libraries() -> None:
    mods = _modules_after("import web4tui.cli, web4tui.app, web4tui.follow, web4tui.runfolder,"
                          " web4tui.engine_client")
    assert not {m.split(".")[0] for m in mods} & set(HEAVY)
    engine_mods = {m for m in mods if m == "engine" or m.startswith("engine.")}
    assert engine_mods <= {"engine", *UI_MAY_IMPORT}


def test_engine_never_imports_the_ui() -> None:
    mods = _modules_after("import engine.worker, engine.launch, engine.check_cli, "
                          "engine.dataset_scan, "
                          "engine.stages.sanity, engine.models, engine.config, engine.runs, "
                          "engine.__main__")
    top = {m.split(".")[0] for m in mods}
    assert "textual" not in top and "web4tui" not in top


def test_protocol_and_checklist_are_stdlib_only() -> None:
    mods = _modules_after("import " + ", ".join(UI_MAY_IMPORT))
    top = {m.split(".")[0] for m in mods}
    assert not top & {"jsonschema", "numpy", "tomli_w", "textual", *HEAVY}
