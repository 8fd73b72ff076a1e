"""The real Qwen2.5-Coder-0.5B-Instruct (``make real-model`` puts it in the cache).

These tests never skip: a missing model is a failed set-up, said plainly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import real_model


@pytest.fixture(scope="session")
def real_gguf() -> Path:
    path = real_model.path()
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make real-model` (downloads and verifies it)")
    return path


@pytest.fixture(scope="session")
def real_folder(real_gguf: Path) -> Path:
    """The published layout (tied embeddings, bf16) as an HF folder."""
    return real_model.tied_folder()


@pytest.fixture(scope="session")
def real_tokenizer(real_folder: Path):
    from engine import models

    return models.load_tokenizer(real_folder)
