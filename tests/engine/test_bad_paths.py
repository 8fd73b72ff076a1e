"""Paths and arguments that are not what they should be: a named error and exit 2, never a
traceback and never a read that blocks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.records import DataFileError, find_files, load_tools, open_data_file

ROOT = Path(__file__).resolve().parents[2]


def web4tui(*args: str | bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "web4tui", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, errors="replace")


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_config_that_is_a_folder_or_a_fifo_is_refused(tmp_path: Path, kind: str) -> None:
    cfg = tmp_path / "cfg.toml"
    if kind == "folder":
        cfg.mkdir()
    else:
        os.mkfifo(cfg)
    proc = web4tui("check", str(tmp_path), "--config", str(cfg))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{cfg}: not a config file" in proc.stderr


def test_an_empty_data_folder_is_bad_usage(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a record")
    proc = web4tui("check", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{tmp_path}: a folder with no .jsonl files in it" in proc.stdout


def test_undecodable_arguments_and_extra_toml_in_a_set_are_refused(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "web4tui", "check", b"bad\xff"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "is not valid UTF-8" in proc.stderr, proc.stderr
    proc = web4tui("check", str(tmp_path), "--set", "lora.r=4\nlora.alpha = 99")
    assert proc.returncode == 2 and "one value per --set" in proc.stderr, proc.stderr


def test_special_files_are_named_and_never_opened_for_reading(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jsonl")
    (tmp_path / "dir.jsonl").mkdir()
    files, missing = find_files([tmp_path / "pipe.jsonl", tmp_path, tmp_path / "gone.jsonl"])
    assert files == []
    assert missing == [f"{tmp_path / 'pipe.jsonl'}: is a FIFO, not a JSONL file",
                       f"{tmp_path / 'pipe.jsonl'}: is a FIFO, not a JSONL file",
                       f"{tmp_path / 'gone.jsonl'}: no such file or folder"]
    with pytest.raises(DataFileError, match="is a FIFO, not a regular file"):
        open_data_file(tmp_path / "pipe.jsonl")  # returns at once instead of blocking
    with pytest.raises(ValueError, match="is a FIFO"):
        load_tools(tmp_path / "pipe.jsonl")


def test_an_unreadable_file_or_folder_is_a_named_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.jsonl").write_text("{}\n")
    (tmp_path / "locked").mkdir()

    def walk_error(top, onerror=None):  # type: ignore[no-untyped-def]
        yield str(tmp_path), ["locked"], ["a.jsonl"]
        onerror(PermissionError(13, "Permission denied", str(tmp_path / "locked")))

    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a non-root user sees it
    monkeypatch.setattr(os, "walk", walk_error)
    files, missing = find_files([tmp_path])
    assert files == []
    assert missing == [f"{tmp_path / 'a.jsonl'}: permission denied; make it readable (chmod +r)",
                       f"{tmp_path / 'locked'}: folder cannot be read (Permission denied)"]
