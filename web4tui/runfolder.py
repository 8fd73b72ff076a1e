"""What the UI side does with a run folder beyond reading it: stop its engine, show its log.

The layout itself (file names, state, the engine's pid, where runs live) is
:mod:`engine.run_layout`, the one the engine writes by; the UI only looks, and signals.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from engine import run_layout
from engine.protocol import printable


class RunFolder(run_layout.RunFolder):
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
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 16384))
                text = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return printable("\n".join(text.splitlines()[-lines:]))  # library output may hold anything


def outputs_dir(cfg: dict | None = None) -> Path:
    return run_layout.outputs_dir(cfg)


def list_runs(root: Path | None = None) -> list[RunFolder]:
    return [RunFolder(r.root) for r in run_layout.list_runs(root or outputs_dir())]


def find_run(name: str | None, root: Path | None = None) -> RunFolder:
    return RunFolder(run_layout.find_run(name, root or outputs_dir()).root)
