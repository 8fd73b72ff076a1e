"""A run made in another outputs folder (run.outputs_dir) is found by every command that
looks for runs, given the same setting: runs, stop, attach, evaluate --run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "tests" / "fixtures" / "good"
DATA = ["--set", f"data.train=['{GOOD}']", "--set", "data.eval=[]",
        "--set", "sanity.expected_records_min=0", "--set", "sanity.expected_tokens_min=0"]


def web4tui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "web4tui", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, env=os.environ)


def test_a_run_made_with_outputs_dir_is_listed_stopped_and_attached_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB4TUI_OUTPUTS", raising=False)  # only the setting says where
    elsewhere = tmp_path / "elsewhere"
    where = ["--set", f"run.outputs_dir={elsewhere}"]
    name = f"made-elsewhere-{os.getpid()}"
    made = web4tui("run", "sanity", "--run", name, *where, *DATA)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (elsewhere / name / "config.toml").is_file()

    listed = web4tui("runs", *where)
    assert listed.returncode == 0 and name in listed.stdout, listed.stdout + listed.stderr
    assert name not in web4tui("runs").stdout  # the default folder does not hold it

    config = tmp_path / "elsewhere.toml"  # a config file saying the same is heard the same
    config.write_text(f'[run]\noutputs_dir = "{elsewhere}"\n')
    by_file = web4tui("runs", "--config", str(config))
    assert by_file.returncode == 0 and name in by_file.stdout, by_file.stdout + by_file.stderr

    stop = web4tui("stop", name, *where)
    assert stop.returncode == 0 and "no engine running" in stop.stdout, stop.stderr
    missing = web4tui("attach", "nope", *where)  # attach looks in the same folder
    assert missing.returncode == 2 and f"no run named 'nope' in {elsewhere}/" in missing.stderr
    newest = web4tui("stop", *where)  # no name: the newest run there
    assert newest.returncode == 0 and f"run {name} has no engine" in newest.stdout

    evaluated = web4tui("evaluate", "--run", name, *where)  # found; it has no adapter yet
    assert evaluated.returncode == 2 and "has no adapter" in evaluated.stderr, evaluated.stderr
