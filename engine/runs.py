"""Run folders: names, the one-engine-per-run lock, atomic writes and per-stage state.

A run is a folder ``outputs/<run>/``. Everything that matters is written
atomically — to a temp file in the same folder, fsync'd, then renamed — so a crash or a
power cut leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.run_layout import (
    RunError,
    RunFolder,
    outputs_dir,  # noqa: F401  (where runs live, for the engine's callers)
    validate_name,
)


def new_name(prefix: str = "run") -> str:
    """A fresh, sortable run name like ``run-20261125-214501``."""
    return f"{prefix}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write a file so readers see the old or the new content, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(folder)


def swap_in(tmp: Path, final: Path) -> None:
    """Rename a written folder over ``final``: the old one is renamed aside first and removed
    only once the new one is in place, so some complete copy exists at every moment."""
    _fsync_tree(tmp)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``target`` and swap it in
    (:func:`swap_in`) only when the block finishes; on any failure the half-built folder is
    removed and ``target`` is left as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def _overwrite(path: Path, text: str) -> None:
    """Rewrite a file in place (not atomic: only when an atomic write has no room)."""
    with open(path, "r+b") as fh:
        fh.write(text.encode("utf-8"))
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())


class RunLocked(RunError):
    pass


class Run(RunFolder):
    """One run folder (its layout: :mod:`engine.run_layout`) as the engine writes it."""

    def set_stage_state(self, stage: str, status: str, **extra: Any) -> dict[str, Any]:
        state = self.read_state()
        entry = state.setdefault("stages", {}).setdefault(stage, {})
        entry.update(status=status, updated=round(time.time(), 3), **extra)
        try:
            atomic_write_json(self.state_path, state)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not self.state_path.exists():
                raise
            # A full disk has no room for the temp copy, but the old file's own blocks can
            # take the new state: better than a run stuck on "running" for ever.
            _overwrite(self.state_path, json.dumps(state, indent=2, ensure_ascii=False,
                                                   default=str) + "\n")
        return state

    def is_locked(self) -> bool:
        """True while an engine (or a command starting one) holds this run's lock."""
        if not self.lock_path.exists():
            return False
        fd = os.open(self.lock_path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return True
            raise
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def engine_pid(self) -> int | None:
        """The engine's pid while that very process lives (pid and start time both match); the
        lock names its holder before ``engine.pid`` exists."""
        from engine.run_layout import live_pid

        pid = self.pid()
        if pid is not None:
            return pid
        try:
            return live_pid(self.lock_path.read_text(encoding="ascii", errors="replace"))
        except OSError:
            return None


class RunLock:
    """Exclusive lock on a run, taken before anything is written to it and held for the life
    of its engine (the OS releases it when the holder dies).

    The command that starts a run takes it first, writes the config under it and hands the
    very lock to the engine it spawns (an inherited descriptor), so which start wins is
    decided once, at the first step. The lock file names its holder ("PID START").
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.fd: int | None = None

    def acquire(self) -> None:
        self.run.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = self.run.engine_pid()
            for _ in range(20):  # the winner of a race names itself right after locking
                if holder is not None:
                    break
                time.sleep(0.05)
                holder = self.run.engine_pid()
            raise RunLocked(
                f"run {self.run.name!r} is busy: engine pid "
                f"{holder if holder is not None else '?'} is working on it; attach to it "
                f"(web4tui attach {self.run.name}) or stop it (web4tui stop {self.run.name})"
            ) from None
        self.fd = fd
        self._name_holder()

    def adopt(self, fd: int) -> None:
        """Take over a lock held through an inherited descriptor (see :mod:`engine.launch`)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # already ours: a no-op
        except OSError as exc:
            raise RunLocked(f"run {self.run.name!r}: the lock handed over is not held "
                            f"({exc.strerror})") from None
        self.fd = fd
        self._name_holder()

    def _name_holder(self) -> None:
        from engine.run_layout import pid_file_text

        assert self.fd is not None
        text = pid_file_text().encode("ascii")
        os.pwrite(self.fd, text, 0)  # then cut: the file is never seen empty
        os.ftruncate(self.fd, len(text))

    def hand_over(self) -> None:
        """Close this process's descriptor without unlocking: the engine holds it now."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def open_run(name: str, outputs: Path, *, create: bool = False) -> Run:
    run = Run(outputs / validate_name(name))
    if not create and not run.root.is_dir():
        raise RunError(f"no run named {name!r} in {outputs}/ (see `web4tui runs`)")
    return run
