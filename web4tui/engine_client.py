"""Talking to the engine from the UI side: resolve a config, start an engine.

The engine is a separate process (``python -m engine``); the UI never imports its heavy
parts. Starting returns at once with the run folder; from then on the run folder's
``events.jsonl`` is the only channel (see :mod:`web4tui.follow`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class EngineError(RuntimeError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Started:
    run: str
    path: Path
    pid: int


def engine_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine", *args]


def start(stages: list[str], *, run: str | None = None, config: str | None = None,
          sets: list[str] = (), resume: bool = False, keep_going: bool = False) -> Started:
    """Prepare the run and start a detached engine; raises EngineError with its message."""
    args = ["start", *stages]
    if run is not None:  # an empty name is refused by the engine, not replaced
        args += ["--run", run]
    if config:
        args += ["--config", config]
    for s in sets:
        args += ["--set", s]
    if resume:
        args.append("--resume")
    if keep_going:
        args.append("--keep-going")
    proc = subprocess.run(engine_cmd(*args), capture_output=True, text=True)
    if proc.returncode != 0:
        msg = proc.stderr.strip() or proc.stdout.strip() or "the engine did not start"
        raise EngineError(msg.removeprefix("error: "), proc.returncode)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return Started(info["run"], Path(info["path"]), int(info["pid"]))


def resolve_config(config: str | None = None, sets: list[str] = ()) -> dict:
    """The config a run started with these overrides would use (the engine validates it);
    raises EngineError with the engine's message (code 2) when it is not valid."""
    args = ["config"]
    if config:
        args += ["--config", config]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(engine_cmd(*args), capture_output=True, text=True)
    if proc.returncode != 0:
        msg = proc.stderr.strip() or "the config could not be resolved"
        raise EngineError(msg.removeprefix("error: "), proc.returncode)
    return json.loads(proc.stdout)
