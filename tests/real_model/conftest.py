"""The real-model group: tests on the real Qwen2.5-Coder-0.5B-Instruct GGUF (~490 MB).

Collected only when ``WEB4TUI_REAL_GGUF`` names that file (the suite itself stays on tiny
models); then every test here runs, none is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "WEB4TUI_REAL_GGUF"

if not os.environ.get(ENV):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def real_gguf() -> Path:
    path = Path(os.environ[ENV])
    if not path.is_file():
        pytest.fail(f"${ENV} is {path}, which is not a file")
    return path
