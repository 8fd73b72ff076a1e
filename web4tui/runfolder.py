"""What the UI side reads from a run folder: its events, state, pid and log tail.

Read-only and stdlib-only: the engine owns these files (DESIGN §5); the UI only looks.
"""

from __future__ import annotations

import json
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.protocol import live_pid, printable

RUN_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def outputs_dir() -> Path:
    return Path(os.environ.get("WEB4TUI_OUTPUTS", "outputs"))


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "engine.log"

    def state(self) -> dict[str, Any]:
        try:
            state = json.loads((self.root / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # a poisoned file is no state
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
            text = (self.root / "engine.pid").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        return live_pid(text)

    def stop(self) -> int | None:
        """Ask the engine to stop gracefully (SIGTERM); returns the pid signalled."""
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:  # it ended between the check and the signal
                return None
        return pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 16384))
                text = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return printable("\n".join(text.splitlines()[-lines:]))  # library output may hold anything

    def status(self) -> str:
        stages = self.state().get("stages", {})
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


def list_runs(root: Path | None = None) -> list[RunFolder]:
    root = root or outputs_dir()
    if not root.is_dir():
        return []
    runs = [RunFolder(p) for p in root.iterdir()
            if p.is_dir() and RUN_NAME.match(p.name) and p.name not in (".", "..")
            and (p / "config.toml").exists()]

    def mtime(r: RunFolder) -> float:
        p = r.events if r.events.exists() else r.root / "config.toml"
        return p.stat().st_mtime

    return sorted(runs, key=mtime, reverse=True)


def find_run(name: str | None, root: Path | None = None) -> RunFolder:
    root = root or outputs_dir()
    if name is None:
        runs = list_runs(root)
        if not runs:
            raise LookupError(f"no runs yet in {root}/ — start one with `web4tui run`")
        return runs[0]
    if not RUN_NAME.match(name) or name in (".", ".."):
        raise LookupError(f"run name {name!r} is not allowed: letters, digits, '.', '_', '-', "
                          "at most 64 characters")
    folder = RunFolder(root / name)
    if not folder.root.is_dir():
        raise LookupError(f"no run named {name!r} in {root}/ (see `web4tui runs`)")
    return folder
