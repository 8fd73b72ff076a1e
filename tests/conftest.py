"""Shared fixtures: a repository root, a clean outputs folder per test, the engine's Python."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Every event written in a test (and by the engines tests start) must match its declaration.
os.environ.setdefault("WEB4TUI_STRICT_EVENTS", "1")


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own outputs folder (the engine and the UI both honour it)."""
    out = tmp_path / "outputs"
    out.mkdir()
    monkeypatch.setenv("WEB4TUI_OUTPUTS", str(out))
    return out


@pytest.fixture
def web4tui_cmd() -> list[str]:
    return [sys.executable, "-m", "web4tui"]
