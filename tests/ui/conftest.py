"""UI test helpers: an isolated settings dir, recorded runs, an app factory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recorded  # noqa: E402
from web4tui import settings as user_settings  # noqa: E402
from web4tui.app import Web4App  # noqa: E402
from web4tui.runfolder import RunFolder  # noqa: E402


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read or write the real ~/.config during tests."""
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv("NO_COLOR", raising=False)
    return home


@pytest.fixture
def runs(outputs: Path) -> Callable[[str], RunFolder]:
    """``runs("training")`` writes that recorded run into the test's outputs folder."""
    return lambda name: getattr(recorded, name)(outputs)


@pytest.fixture
def make_app() -> Callable[..., Web4App]:
    def make(run: RunFolder | None = None, **settings: object) -> Web4App:
        s = user_settings.load()
        for k, v in settings.items():
            setattr(s, k, v)
        return Web4App(run=run, settings=s)
    return make


@pytest.fixture
def fake_engine() -> Iterator[subprocess.Popen]:
    """A harmless live process standing in for an engine (it is what SIGTERM reaches)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], str | None]]:
    """Record engine starts instead of launching engines."""
    calls: list[tuple[list[str], str | None]] = []

    def fake_start(stages, *, run=None, config=None, sets=()):  # noqa: ANN001, ANN202
        from web4tui.engine_client import EngineError
        calls.append((list(stages), run))
        raise EngineError("test: not started", 1)

    monkeypatch.setattr("web4tui.engine_client.start", fake_start)
    return calls
