"""The real ``web4tui`` in a real terminal (tmux, 80x24) against a real engine run:
start the app, run stage 1 from the keyboard, watch its items turn green, quit, re-attach
and see the same state; open it on broken data and read every bad line as file:line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


def tmux(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", *args], capture_output=True, text=True)


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session).stdout


def wait_for(session: str, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = screen(session)
        if re.search(pattern, text, re.MULTILINE):
            return text
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} never appeared; the screen:\n{screen(session)}")


def launch(session: str, outputs: Path, *args: str) -> None:
    env = f"WEB4TUI_OUTPUTS={outputs} XDG_CONFIG_HOME={outputs}/xdg TERM=xterm-256color"
    cmd = f"cd {ROOT} && exec env {env} {sys.executable} -m web4tui {' '.join(args)}"
    assert tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd).returncode == 0


def test_run_stage_one_from_the_keyboard_then_reattach(outputs: Path) -> None:
    session = f"web4tui-test-{os.getpid()}"
    try:
        launch(session, outputs)
        wait_for(session, r"new run \(default config\)", 60)
        tmux("send-keys", "-t", session, "r")
        text = wait_for(session, r"[✓!] 1\. Sanity check", 120)
        assert "✓ Valid JSONL" in text and "✓ Tokenizer round-trip" in text
        wait_for(session, r"│ idle │", 20)  # the engine finished and exited
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 10
        while tmux("has-session", "-t", session).returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert tmux("has-session", "-t", session).returncode != 0, "q did not quit"

        launch(session, outputs, "attach")
        again = wait_for(session, r"[✓!] 1\. Sanity check", 60)
        assert "✓ Valid JSONL" in again
        wait_for(session, r"run run-\d{8}-\d{6}", 20)  # the header may draw a frame later
    finally:
        tmux("kill-session", "-t", session)


def test_open_on_broken_data_run_stage_one_and_read_every_bad_line(outputs: Path) -> None:
    session = f"web4tui-broken-{os.getpid()}"
    try:
        launch(session, outputs, "--set", "data.train=tests/fixtures/bad")
        first = wait_for(session, r"data tests/fixtures/bad", 60)
        assert all(f"{n}. " in first for n in range(1, 9)), first  # all eight stages in view
        tmux("send-keys", "-t", session, "r")  # stage 1 is cheap: it starts at once
        text = wait_for(session, r"✗ 1\. Sanity check", 120)
        assert "✗ Valid JSONL" in text
        wait_for(session, r"│ idle │", 20)
        tmux("send-keys", "-t", session, "Down")  # onto "Valid JSONL"
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "Enter")
        wait_for(session, r"every bad line", 20)
        # Each bad line as file:line and its reason (once the start notices have gone).
        view = wait_for(session, r"tests/fixtures/bad/invalid_json\.jsonl:2 +invalid_json", 15)
        assert "lines flagged, by reason" in view
        tmux("send-keys", "-t", session, "End")  # the view scrolls to the last bad lines
        wait_for(session, r"tests/fixtures/bad/not_object\.jsonl:3 +not_object", 10)
        tmux("send-keys", "-t", session, "Escape")
        back = wait_for(session, r"✗ 1\. Sanity check", 10)
        assert "⊘" not in back or "blocked" in back
    finally:
        tmux("kill-session", "-t", session)
