"""Self-describing checkpoints: ``checkpoints/<stage>/step-000200/``, whole or absent.

A checkpoint holds everything a resumed run needs to continue exactly where it stopped: the
adapter, the optimizer and scheduler states, every RNG state, the data position and the loss
history, plus the training settings it was made with (so a changed config is reported).

Whole or absent: the folder is built under a temporary name, given a manifest (every file's
size and SHA-256, written last) and fsync'd; only then is it renamed into place. Saving a step
that already exists renames the old folder aside first and deletes it only after the new one
is in, so a kill at any moment leaves a complete copy of that step under some name.
:func:`latest` trusts only folders whose manifest verifies: an incomplete one is skipped with
a warning (the previous complete one is used), and a complete copy left under a temporary
name by a kill is put back in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from engine.runs import fsync_dir, swap_in

STEP_DIR = re.compile(r"^step-(\d{6,})$")
#: A folder being written (``.tmp-PID``) or an older copy being replaced (``.old-PID``).
SPARE_DIR = re.compile(r"^\.step-(\d{6,})\.(tmp|old)-\d+$")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: A manifest is a few lines per file; anything bigger was not written by this module.
MANIFEST_MAX_BYTES = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed; the message names the folder and why."""

    hint = ("Resume from an earlier run folder, or run the stage again without --resume "
            "(its checkpoints are kept aside, never deleted).")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:06d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders by name (oldest first), complete or not: see :func:`latest`."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := STEP_DIR.match(p.name)) and (p / "trainer_state.json").exists()]
    return [p for _, p in sorted(found)]


# -- the manifest -----------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    """Record every file's size and hash; written last, so its presence means "complete"."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            files[p.relative_to(folder).as_posix()] = {"size": p.stat().st_size,
                                                       "sha256": _sha256(p)}
    (folder / MANIFEST).write_text(json.dumps({"format": MANIFEST_FORMAT, "files": files},
                                              indent=1), encoding="utf-8")


def verify(folder: Path) -> str | None:
    """None when the folder is a complete checkpoint, else why it is not."""
    mpath = folder / MANIFEST
    try:
        if not mpath.is_file():
            return "no manifest (written by an older version, or cut short)"
        if mpath.stat().st_size > MANIFEST_MAX_BYTES:
            return "manifest too large"
        manifest = json.loads(mpath.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return "unreadable manifest"
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or "trainer_state.json" not in files:
        return "malformed manifest"
    for rel, meta in files.items():
        p = folder / rel
        if not isinstance(rel, str) or ".." in Path(rel).parts or Path(rel).is_absolute() \
                or not isinstance(meta, dict):
            return "malformed manifest"
        try:
            if not p.is_file():
                return f"{rel} is missing"
            if p.stat().st_size != meta.get("size"):
                return f"{rel} has {p.stat().st_size} bytes, the manifest says {meta.get('size')}"
            if _sha256(p) != meta.get("sha256"):
                return f"{rel} does not match its hash"
        except OSError as exc:
            return f"{rel} cannot be read ({exc.strerror or exc})"
    return None


def latest(root: Path, warn: Callable[[str], None] | None = None) -> Path | None:
    """The newest complete checkpoint, putting back a complete copy a kill left aside.

    Incomplete folders are skipped (each reported through ``warn``); None when no complete
    checkpoint exists. Raises :class:`CheckpointError` when there are checkpoints but none
    of them is complete, so a resume never silently starts over.
    """
    if not root.is_dir():
        return None
    say = warn or (lambda message: None)
    by_step: dict[int, list[Path]] = {}
    for p in root.iterdir():
        m = STEP_DIR.match(p.name) or SPARE_DIR.match(p.name)
        if m and p.is_dir():
            by_step.setdefault(int(m.group(1)), []).append(p)
    skipped = []
    for step in sorted(by_step, reverse=True):
        final = step_dir(root, step)
        if final.is_dir():
            reason = verify(final)
            if reason is None:
                return final
            skipped.append(f"{final.name}: {reason}")
            say(f"checkpoint {final.name} is incomplete ({reason}); skipped")
        spares = sorted((p for p in by_step[step] if p != final),
                        key=lambda p: (".tmp-" in p.name, p.stat().st_mtime), reverse=True)
        for spare in spares:
            if verify(spare) is None:
                if final.exists():  # keep the broken one for inspection, out of the way
                    os.replace(final, root / f".{final.name}.broken-{int(time.time())}")
                os.replace(spare, final)
                fsync_dir(root)
                say(f"checkpoint {final.name} was put back from its complete copy {spare.name}")
                return final
    if skipped:
        raise CheckpointError(f"no complete checkpoint in {root} to resume: "
                              + "; ".join(skipped))
    return None


#: State files earlier versions kept as pickles; never loaded (unpickling can run any code).
PICKLE_STATE = ("optimizer.pt", "scheduler.pt", "rng.pt")
#: A safetensors header (JSON) is small; a bigger length field means it is no such file.
SAFETENSORS_MAX_HEADER = 100 << 20


def check_loadable(folder: Path) -> None:
    """Raise :class:`CheckpointError` unless every state file is safetensors or JSON of the
    right outline (stdlib only, so a resume can be refused before an engine starts)."""
    names = {p.name for p in folder.iterdir()}
    if not ({"optimizer.safetensors", "optimizer.json"} & names) and set(PICKLE_STATE) & names:
        raise CheckpointError(
            f"{folder} keeps its optimizer state as pickle files ({', '.join(sorted(set(PICKLE_STATE) & names))}) "
            "from an older version; they are never loaded, since a pickle can run any code")
    read_state(folder)
    for p in sorted(folder.iterdir()):
        if p.suffix == ".safetensors":
            _check_safetensors(p)
        elif p.suffix == ".json" and p.name != MANIFEST:
            try:
                json.loads(p.read_bytes().decode("utf-8"))
            except (OSError, ValueError, RecursionError) as exc:
                raise CheckpointError(f"{p}: not a JSON file ({type(exc).__name__})") from None


def _check_safetensors(path: Path) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            size = os.fstat(fh.fileno()).st_size
            if not 0 < n <= min(SAFETENSORS_MAX_HEADER, size - 8):
                raise ValueError("bad header length")
            header = json.loads(fh.read(n).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from None


# -- writing ----------------------------------------------------------------------------------
def commit(tmp: Path, final: Path, keep: int) -> Path:
    """Move a fully written temp folder into place and prune to the newest ``keep``."""
    write_manifest(tmp)
    swap_in(tmp, final)
    for stale in final.parent.iterdir():  # copies a killed engine left behind
        if SPARE_DIR.match(stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    for gone in list_checkpoints(final.parent)[:-keep] if keep > 0 else []:
        shutil.rmtree(gone, ignore_errors=True)
    return final


def temp_dir(root: Path, step: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".step-{step:06d}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


@contextlib.contextmanager
def saving(root: Path, step: int, keep: int) -> Iterator[Path]:
    """``with saving(root, step, keep) as folder:`` write the files into ``folder``; on a clean
    exit it becomes ``step-NNNNNN`` (see :func:`commit`), on any failure it is removed — never
    half a checkpoint, and on a full disk its space is given back at once."""
    tmp = temp_dir(root, step)
    try:
        yield tmp
        commit(tmp, step_dir(root, step), keep)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_state(folder: Path, state: dict[str, Any]) -> None:
    (folder / "trainer_state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")


def read_state(folder: Path) -> dict[str, Any]:
    try:
        state = json.loads((folder / "trainer_state.json").read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{folder / 'trainer_state.json'}: unreadable "
                              f"({type(exc).__name__})") from None
    if not (isinstance(state, dict) and isinstance(state.get("step"), int)
            and isinstance(state.get("losses"), list) and isinstance(state.get("grad_norms"), list)
            and all(isinstance(v, (int, float)) for v in state["losses"] + state["grad_norms"])):
        raise CheckpointError(f"{folder / 'trainer_state.json'}: not a trainer state")
    return state


def set_aside(root: Path) -> Path | None:
    """Keep the checkpoints of an earlier attempt when a stage starts over (never delete)."""
    if not root.exists() or not any(root.iterdir()):
        return None
    dest = root.with_name(f"{root.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(root, dest)
    return dest


def config_differences(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Training settings that differ between a checkpoint and the current config."""
    if not isinstance(saved, dict):
        saved = {}
    return {k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)}
