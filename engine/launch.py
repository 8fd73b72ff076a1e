"""Prepare a run folder and start a detached engine on it.

Preparation happens in the caller's process so mistakes (a bad run name, a wrong config key,
a run that is already busy) come back at once with exit code 2. The work itself happens in a
new session (``start_new_session``): closing the terminal or losing SSH does not stop it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from engine import checklist, config, protocol
from engine.runs import Run, RunError, atomic_write, new_name, open_run, outputs_dir


class LaunchError(RuntimeError):
    """The engine did not come up; the message carries the tail of engine.log."""


def prepare(run_name: str | None, config_file: str | None, sets: list[str],
            stages: list[str]) -> tuple[Run, dict[str, Any]]:
    """Resolve the config and write it into the run folder before any work starts."""
    for s in stages:
        if s not in checklist.STAGE_IDS:
            raise RunError(f"unknown stage {s!r}; stages are: {', '.join(checklist.STAGE_IDS)}")
    base_cfg = config.load(config_file, sets)
    outputs = outputs_dir(base_cfg)
    name = run_name or new_name()
    run = open_run(name, outputs, create=True)
    if run.config_path.exists():
        # Continuing an existing run: its own config is the base, --set/--config apply on top.
        cfg = config.load(run.config_path, sets) if not config_file else base_cfg
    else:
        cfg = base_cfg
    if run.is_locked():
        pid = run.pid_path.read_text().strip() if run.pid_path.exists() else "?"
        raise RunError(f"run {run.name!r} is busy (engine pid {pid}); "
                       f"`web4tui attach {run.name}` to watch or `web4tui stop {run.name}`")
    run.root.mkdir(parents=True, exist_ok=True)
    atomic_write(run.config_path, config.dumps(cfg))
    return run, cfg


def spawn(run: Run, stages: list[str], *, resume: bool = False, keep_going: bool = False,
          handshake_s: float = 60.0) -> int:
    """Start ``python -m engine work`` detached; wait for its hello. Returns its pid."""
    offset = run.events_path.stat().st_size if run.events_path.exists() else 0
    with open(run.log_path, "ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "work", str(run.root), *stages,
             *(["--resume"] if resume else []), *(["--keep-going"] if keep_going else [])],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
            start_new_session=True, cwd=os.getcwd(), env=_child_env(),
        )
    reader = protocol.EventReader(run.events_path)
    reader.offset = offset
    deadline = time.monotonic() + handshake_s
    while time.monotonic() < deadline:
        if any(ev.type == "hello" for ev in reader.poll()):
            return proc.pid
        if proc.poll() is not None:
            raise LaunchError(f"the engine exited with code {proc.returncode} before starting:\n"
                              + tail(run.log_path))
        time.sleep(0.05)
    raise LaunchError("the engine did not say hello within "
                      f"{handshake_s:.0f} s:\n" + tail(run.log_path))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "true")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # The engine must be importable however the caller was started (console script, -m).
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no engine.log)"
    return "\n".join(text.splitlines()[-lines:])
