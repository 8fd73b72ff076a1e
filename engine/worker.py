"""The engine process working on one run: lock, pid, log, hello, stages, graceful stop.

Started detached by :mod:`engine.launch` (its own session, so a closed terminal or a dropped
SSH connection does not reach it). SIGTERM sets a flag; the running stage finishes its current
step, saves what it has, and ends as ``cancelled``.
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import signal
import sys
import time
import tomllib
import traceback
from pathlib import Path
from typing import Any

from engine import __version__, backends, checklist, protocol, run_layout
from engine.backends import distributed
from engine.runs import Run, RunLock, atomic_write
from engine.stages import runner
from engine.stages.base import Cancelled, StageContext

log = logging.getLogger("engine")


class StopFlag:
    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def install(self) -> None:
        def on_term(signum: int, frame: object) -> None:
            self.requested = True
            log.info("stop requested (signal %s): finishing the current step", signum)
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped terminal is not a stop


def _redirect_output(log_path: Path) -> None:
    """Library noise (warnings, progress bars) goes to engine.log, never to the event stream."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", closefd=False)


def _setup_logging(log_path: Path) -> None:
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def work(run_dir: Path, stages: list[str], *, resume: bool = False,
         detach_output: bool = True, lock_fd: int | None = None,
         keep_going: bool = False) -> int:
    """Run the given stages on a prepared run folder; returns the process exit code.

    A stage whose needs (see :func:`engine.checklist.blocker`) are not proved ends as
    ``blocked`` at once, naming what blocks it; ``keep_going`` runs every stage regardless.
    """
    run = Run(run_dir)
    lock = RunLock(run)
    if lock_fd is not None:
        lock.adopt(lock_fd)  # taken by `start` before it wrote the config
    else:
        lock.acquire()  # raises RunLocked with a message naming the holder
    try:
        if detach_output:
            _redirect_output(run.log_path)
        _setup_logging(run.log_path)
        atomic_write(run.pid_path, run_layout.pid_file_text())
        cfg = tomllib.loads(run.config_path.read_text(encoding="utf-8"))
        stop = StopFlag()
        stop.install()
        writer = protocol.EventWriter(run.events_path, run.name)
        try:
            return _run_stages(run, cfg, stages, writer, stop, resume, keep_going)
        finally:
            writer.close()
    finally:
        try:
            run.pid_path.unlink()
        except FileNotFoundError:
            pass
        lock.release()


def _run_stages(run: Run, cfg: dict[str, Any], stages: list[str],
                writer: protocol.EventWriter, stop: StopFlag, resume: bool,
                keep_going: bool = False) -> int:
    choice = backends.select(cfg)  # the run header states backend, device and precision
    backend, device, why = choice.backend, choice.device, choice.why
    precision, precision_why = choice.precision, choice.precision_why
    writer.emit("hello", stage=None, engine_version=__version__, pid=os.getpid(),
                backend=backend, device=device, python=platform.python_version(),
                argv=sys.argv, backend_reason=f"{why}; {precision}: {precision_why}",
                precision=precision, precision_reason=precision_why,
                **distributed.header(cfg, backend, device))
    log.info("engine %s pid %s: stages %s on %s/%s", __version__, os.getpid(), stages,
             backend, device)
    all_ok = True
    for stage_id in stages:
        spec = checklist.stage(stage_id)
        writer.stage = stage_id
        if stop():
            writer.emit("stage_started", title=spec.title, total=None)
            writer.emit("stage_finished", status="cancelled", duration_s=0.0,
                        summary={"reason": "stopped before the stage began"})
            run.set_stage_state(stage_id, "cancelled")
            all_ok = False
            continue
        block = None if keep_going else gate(run, stage_id, cfg)
        if block is not None:
            end_blocked(run, stage_id, block, writer.emit)
            all_ok = False
            continue
        status = run_one(stage_id, cfg, writer.emit, stop, run, resume=resume)
        all_ok = all_ok and status == "ok"
    writer.stage = None
    return 0 if all_ok else 1


def gate(run: Run, stage_id: str, cfg: dict[str, Any]) -> checklist.Blocker | None:
    """What keeps ``stage_id`` from running, judged on the run's recorded state."""
    stages = run.read_state().get("stages", {})
    stage_status = {s: str(e.get("status")) for s, e in stages.items()}
    item_status = {i: str(st) for e in stages.values()
                   for i, st in (e.get("checks") or {}).items()}
    return checklist.blocker(stage_id, stage_status, item_status, cfg)


def end_blocked(run: Run, stage_id: str, block: checklist.Blocker, emit: Any) -> None:
    """A blocked stage starts and ends at once: no compute is spent on unproved ground."""
    spec = checklist.stage(stage_id)
    log.info("stage %s blocked: %s", stage_id, block.reason)
    emit("stage_started", title=spec.title, total=None)
    emit("stage_finished", status="blocked", duration_s=0.0, summary=block.payload())
    # Its earlier results no longer stand on proved ground: nothing downstream may use them.
    run.set_stage_state(stage_id, "blocked", duration_s=0.0, checks={},
                        blocked_by=block.item, reason=block.reason)


def run_one(stage_id: str, cfg: dict[str, Any], emit: Any, stop: Any, run: Run | None,
            *, resume: bool = False) -> str:
    """One stage with its start/finish events and state, whatever happens inside it."""
    spec = checklist.stage(stage_id)
    ctx = StageContext(cfg=cfg, emit=emit, stop_requested=stop,
                       run_dir=run.root if run else None, resume=resume)
    if run:
        run.set_stage_state(stage_id, "running")
    emit("stage_started", title=spec.title, total=None)
    t0 = time.monotonic()
    summary: dict[str, Any] = {}
    try:
        status = runner(stage_id)(ctx)
    except Cancelled:
        status = "cancelled"
        summary["reason"] = "stopped on request"
    except Exception as exc:  # a bug or a device error: report it, keep the run folder sane
        status = "failed"
        log.exception("stage %s crashed", stage_id)
        _emit_if_possible(emit, "error",
                          message=f"{spec.title} failed: {str(exc) or type(exc).__name__}",
                          detail=traceback.format_exc(limit=8), hint=_hint(exc))
    duration = round(time.monotonic() - t0, 3)
    checks = {c["item"]: c["status"] for c in ctx.checks}
    summary = {**ctx.summary, **summary}
    summary.setdefault("checks", checks)
    summary["unproved"] = unproved(checks)
    _emit_if_possible(emit, "stage_finished", status=status, duration_s=duration,
                      summary=summary)
    if run:
        try:
            run.set_stage_state(stage_id, status, duration_s=duration, checks=checks)
        except OSError:
            log.exception("could not record %s as %s in state.json", stage_id, status)
    return status


def unproved(checks: dict[str, str]) -> list[str]:
    """The required items a stage skipped: it did not fail, but it did not prove them either,
    so a run that asked for this stage has not passed (the command lines say so)."""
    return [item for item, status in checks.items() if status == "skip"
            and item in checklist.ITEMS and not checklist.ITEMS[item].optional]


def _emit_if_possible(emit: Any, type: str, **payload: Any) -> None:
    """An event that cannot be written (a full disk) is logged instead: the stage's outcome
    must still reach state.json."""
    try:
        emit(type, **payload)
    except OSError:
        log.exception("could not write the %s event", type)


def _hint(exc: Exception) -> str:
    if isinstance(getattr(exc, "hint", None), str):  # errors that know what to do say so
        return exc.hint  # type: ignore[attr-defined]
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ("The disk is full. Free space where the run folder is (old checkpoints, "
                "merged models and GGUF files are large), then continue with --resume: the "
                "last complete checkpoint is kept.")
    text = str(exc).lower()
    if "out of memory" in text or isinstance(exc, MemoryError):
        return "Lower the sequence length or the batch size, or raise the memory budget."
    if isinstance(exc, (FileNotFoundError, PermissionError)):
        return "Check the path in the config (data.train, model.id) and its permissions."
    return "See engine.log in the run folder for the full traceback."
