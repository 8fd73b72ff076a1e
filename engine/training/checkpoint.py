"""Self-describing checkpoints: ``checkpoints/<stage>/step-000200/``, written atomically.

A checkpoint holds everything a resumed run needs to continue exactly where it stopped: the
adapter, the optimizer and scheduler states, every RNG state, the data position and the loss
history, plus the training settings it was made with (so a changed config is reported).
The folder is built under a temporary name and renamed into place, so a kill at any moment
leaves either a complete checkpoint or none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

STEP_DIR = re.compile(r"^step-(\d{6,})$")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:06d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := STEP_DIR.match(p.name)) and (p / "trainer_state.json").exists()]
    return [p for _, p in sorted(found)]


def latest(root: Path) -> Path | None:
    cps = list_checkpoints(root)
    return cps[-1] if cps else None


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, final: Path, keep: int) -> Path:
    """Move a fully written temp folder into place and prune to the newest ``keep``."""
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for old in list_checkpoints(final.parent)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def temp_dir(root: Path, step: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".step-{step:06d}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def write_state(folder: Path, state: dict[str, Any]) -> None:
    (folder / "trainer_state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")


def read_state(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))


def set_aside(root: Path) -> Path | None:
    """Keep the checkpoints of an earlier attempt when a stage starts over (never delete)."""
    if not root.exists() or not any(root.iterdir()):
        return None
    dest = root.with_name(f"{root.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(root, dest)
    return dest


def config_differences(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Training settings that differ between a checkpoint and the current config."""
    return {k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)}
