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
from engine.runs import Run, RunError, RunLock, atomic_write, new_name, open_run, outputs_dir
from engine.training import checkpoint as ckpt

#: Stages that train and can be resumed from their checkpoints.
TRAINING_STAGES = ("dry_run", "mini", "full")


class LaunchError(RuntimeError):
    """The engine did not come up; the message carries the tail of engine.log."""


def prepare(run_name: str | None, config_file: str | None, sets: list[str],
            stages: list[str]) -> tuple[Run, dict[str, Any], RunLock]:
    """Take the run's lock, then resolve the config and write it into the run folder.

    The lock comes first, before anything is read from or written to the folder, so of two
    simultaneous starts exactly one goes on (the other gets :class:`RunLocked`, naming the
    holder) and the config the engine works with is the one its own command wrote.
    The caller hands the returned lock to :func:`spawn` or releases it.
    """
    for s in stages:
        if s not in checklist.STAGE_IDS:
            raise RunError(f"unknown stage {s!r}; stages are: {', '.join(checklist.STAGE_IDS)}")
    base_cfg = config.load(config_file, sets)
    outputs = outputs_dir(base_cfg)
    name = new_name() if run_name is None else run_name
    run = open_run(name, outputs, create=True)
    lock = RunLock(run)
    lock.acquire()  # raises RunLocked naming the engine that holds the run
    try:
        if run.config_path.exists():
            # Continuing an existing run: its own config is the base, --set/--config apply on top.
            cfg = config.load(run.config_path, sets) if not config_file else base_cfg
        else:
            cfg = base_cfg
        atomic_write(run.config_path, config.dumps(cfg))
    except BaseException:
        lock.release()
        raise
    return run, cfg, lock


def check_resume(run: Run, stages: list[str]) -> None:
    """Refuse a resume at once (exit 2) when a stage's newest complete checkpoint holds state
    this version would never load; the engine checks again as it loads."""
    for stage in stages:
        if stage in TRAINING_STAGES:
            root = run.root / "checkpoints" / stage
            last = ckpt.latest(root, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
            if last is not None:
                ckpt.check_loadable(last)


def spawn(run: Run, stages: list[str], *, lock: RunLock | None = None, resume: bool = False,
          keep_going: bool = False,
          handshake_s: float = 60.0) -> int:
    """Start ``python -m engine work`` detached, handing it the run's lock; wait for its hello.
    Returns its pid."""
    offset = run.events_path.stat().st_size if run.events_path.exists() else 0
    held = () if lock is None or lock.fd is None else (lock.fd,)
    with open(run.log_path, "ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "work", str(run.root), *stages,
             *(["--resume"] if resume else []), *(["--keep-going"] if keep_going else []),
             *([f"--lock-fd={held[0]}"] if held else [])],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, pass_fds=held,
            start_new_session=True, cwd=os.getcwd(), env=_child_env(),
        )
    if lock is not None:
        lock.hand_over()  # the engine holds the run now; it is released when the engine ends
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
