"""Run names on the command line: '.', '..' and '' name no run and are refused (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from web4tui.runfolder import find_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_names_are_not_runs(outputs: Path, name: str) -> None:
    (outputs / "config.toml").write_text("")  # outputs/ itself looks like a run folder
    with pytest.raises(LookupError, match="is not allowed"):
        find_run(name, outputs)
    for cmd in ("attach", "stop"):
        proc = subprocess.run([sys.executable, "-m", "web4tui", cmd, name], capture_output=True,
                              text=True, cwd=ROOT, timeout=60)
        assert proc.returncode == 2 and "is not allowed" in proc.stderr, (cmd, proc.stderr)


def test_an_empty_run_name_is_refused_not_replaced(outputs: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "web4tui", "run", "sanity", "--run", ""],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "run name '' is not allowed" in proc.stderr, proc.stderr
    assert list(outputs.iterdir()) == []
