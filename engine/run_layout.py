"""Where a run lives and what its folder holds: names, files, state, the engine's pid.

The engine writes these files (:mod:`engine.runs` adds the lock and the atomic writes); the
UI only reads them. Both sides take the layout from here, so it is stdlib-only and the UI may
import it without loading anything heavy.

A run is the folder ``<outputs>/<run>/``; ``<outputs>`` is ``WEB4TUI_OUTPUTS`` when set, else
the config's ``run.outputs_dir``.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


RUN_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: Where runs go when no config says: the shipped default of ``run.outputs_dir``.
DEFAULT_OUTPUTS = "outputs"


class RunError(ValueError, LookupError):
    """A user-facing problem with a run (bad name, missing run, locked run): a bad value, and
    a run that cannot be found."""


def validate_name(name: str) -> str:
    if not RUN_NAME.match(name or "") or name in (".", ".."):
        raise RunError(
            f"run name {name!r} is not allowed: use letters, digits, '.', '_' or '-', "
            "at most 64 characters (e.g. web4-lora-r8)")
    return name


def outputs_dir(cfg: dict[str, Any] | None = None) -> Path:
    """The folder of runs: the environment wins (tests and scripts point it anywhere), then
    the config; with neither, the shipped default."""
    env = os.environ.get("WEB4TUI_OUTPUTS")
    if env:
        return Path(env)
    return Path(cfg["run"]["outputs_dir"]) if cfg else Path(DEFAULT_OUTPUTS)


@dataclass(frozen=True)
class RunFolder:
    """One run folder and the files in it, read without taking its lock."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def log_path(self) -> Path:
        return self.root / "engine.log"

    @property
    def pid_path(self) -> Path:
        return self.root / "engine.pid"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    def read_state(self) -> dict[str, Any]:
        """``state.json`` as ``{"stages": {stage: {...}}}``; a poisoned file (or entry) is no
        state rather than an error."""
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {"stages": {}}
        if not (isinstance(state, dict) and isinstance(state.get("stages"), dict)):
            return {"stages": {}}
        state["stages"] = {k: v for k, v in state["stages"].items() if isinstance(v, dict)}
        return state

    def pid(self) -> int | None:
        """The engine's pid while it is alive (None when no engine works on this run).

        ``engine.pid`` records the pid and its process's start time; a pid that a dead engine
        left behind and the system has since given to another process does not count.
        """
        try:
            text = self.pid_path.read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        return live_pid(text)

    def status(self) -> str:
        """running, died, failed, cancelled, ok, skipped, or new (nothing run yet)."""
        stages = self.read_state()["stages"]
        if self.pid() is not None:
            return "running"
        if not stages:
            return "new"
        statuses = [s.get("status") for s in stages.values()]
        if "running" in statuses:
            return "died"  # marked running but no engine alive
        if "failed" in statuses:
            return "failed"
        if "cancelled" in statuses:
            return "cancelled"
        return "ok" if "ok" in statuses else "skipped"


def list_runs(root: Path) -> list[RunFolder]:
    """The runs in ``root``, the most recently active first."""
    if not root.is_dir():
        return []
    found = [RunFolder(p) for p in root.iterdir()
             if p.is_dir() and RUN_NAME.match(p.name) and p.name not in (".", "..")
             and (p / "config.toml").exists()]

    def mtime(r: RunFolder) -> float:
        p = r.events_path if r.events_path.exists() else r.config_path
        return p.stat().st_mtime

    return sorted(found, key=mtime, reverse=True)


def find_run(name: str | None, root: Path) -> RunFolder:
    """The run named ``name`` in ``root`` (the newest one when ``name`` is None)."""
    if name is None:
        found = list_runs(root)
        if not found:
            raise RunError(f"no runs yet in {root}/ — start one with `web4tui run`")
        return found[0]
    folder = RunFolder(root / validate_name(name))
    if not folder.root.is_dir():
        raise RunError(f"no run named {name!r} in {root}/ (see `web4tui runs`)")
    return folder


# -- the engine's pid file ----------------------------------------------------------------------
# ``engine.pid`` says "PID START": the pid and the process's start time, so a pid that a dead
# engine left behind and the system has since given to another process is never mistaken for
# the engine (nor signalled). Shared by the engine (writes) and the UI (reads, stops).

def process_start_time(pid: int) -> str | None:
    """An opaque, stable token for when ``pid`` started; None when no such process exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        # the command name (field 2) may hold spaces and ')'; fields resume after the last ')'
        return data[data.rindex(b")") + 2:].split()[19].decode("ascii")
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None  # Linux, and the process is gone
    except (OSError, ValueError, IndexError):
        return None
    return _ps_start_time(pid)


_PS_CACHE: dict[int, tuple[float, str | None]] = {}


def _ps_start_time(pid: int) -> str | None:
    """macOS and other systems without /proc: ask ``ps`` (cached a second: the app asks often)."""
    import subprocess

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    hit = _PS_CACHE.get(pid)
    if hit and time.monotonic() - hit[0] < 1.0:
        return hit[1]
    try:
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(int(pid))], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    token = "-".join(out.split()) or None
    _PS_CACHE[pid] = (time.monotonic(), token)
    return token


def pid_file_text(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid} {process_start_time(pid) or '-'}\n"


def live_pid(text: str) -> int | None:
    """The pid in a pid file's text when that very process is still alive, else None."""
    parts = text.split()
    if not parts or not parts[0].isdigit() or len(parts[0]) > 10:
        return None
    pid = int(parts[0])
    if pid <= 0:
        return None
    if len(parts) >= 2 and parts[1] != "-":
        return pid if process_start_time(pid) == parts[1] else None
    try:  # a pid file without a start time (an older engine): only existence can be checked
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid
