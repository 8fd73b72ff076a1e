"""A training stage's loop on several processes: start them under ``torch.distributed.run``,
relay the first one's events, pass a stop on, and watch them until they end.

The engine stays the one writer of the run's event stream: the first process writes its
events into ``ranks/<stage>/events.jsonl`` and the engine re-emits them as they come, so a
reader sees one stream with one ``seq``. A stop (SIGTERM on the engine) becomes the file
``ranks/<stage>/stop``, which every process checks each step; they agree on the step to stop
at, the first saves once, and all end. A process that dies makes ``torch.distributed.run``
end the others (it looks every ``train.monitor_interval_s``); the stage then ends ``failed``
with that process's exit and the tail of its stderr. Every process's own output lands in
``engine.log`` (and, per process, under ``ranks/<stage>/logs/``).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine import protocol, run_layout
from engine.context import Cancelled, StageContext
from engine.runs import atomic_write
from engine.training.curves import LossBelow
from engine.training.memory import budget_gb
from engine.training.plan import TrainPlan, TrainResult

__all__ = ["LAUNCHER", "plan_from_json", "train"]

#: The launcher the processes run under (the module ``python -m`` starts).
LAUNCHER = "torch.distributed.run"
#: The module each process runs.
ENTRY = "engine.stages.training_rank"
TAIL_LINES = 30  # lines of output an error shows
#: Lines of output kept to read the launcher's failure summary from: it lists every process
#: that ended, each with its traceback, so it runs far longer than what an error shows.
SUMMARY_LINES = 2000


def folder_for(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / "ranks" / stage


def plan_to_json(plan: TrainPlan) -> dict[str, Any]:
    stop = plan.stop_when
    if stop is not None and not isinstance(stop, LossBelow):
        raise TypeError("several training processes need a stop rule that is plain data "
                        "(engine.training.curves.LossBelow)")
    return {"stage": plan.stage, "grad_accum": plan.grad_accum, "epochs": plan.epochs,
            "max_steps": plan.max_steps, "resume": plan.resume,
            "stop_when": dataclasses.asdict(stop) if stop is not None else None,
            "checkpoint_root": str(plan.checkpoint_root), "adapter_dir": str(plan.adapter_dir)}


def plan_from_json(d: dict[str, Any]) -> TrainPlan:
    stop = d["stop_when"]
    return TrainPlan(stage=d["stage"], grad_accum=d["grad_accum"], epochs=d["epochs"],
                     max_steps=d["max_steps"], resume=d["resume"],
                     stop_when=LossBelow(**stop) if stop is not None else None,
                     checkpoint_root=Path(d["checkpoint_root"]),
                     adapter_dir=Path(d["adapter_dir"]))


def command(cfg: dict[str, Any], n: int, folder: Path) -> list[str]:
    return [sys.executable, "-m", LAUNCHER, "--standalone", f"--nproc-per-node={n}",
            "--max-restarts=0", f"--monitor-interval={cfg['train']['monitor_interval_s']}",
            "--log-dir", str(folder / "logs"), "--redirects=3", "--tee=3",
            "-m", ENTRY, str(folder / "spec.json")]


def train(ctx: StageContext, plan: TrainPlan, n: int, run_dir: Path,
          cfg: dict[str, Any] | None = None) -> TrainResult:
    """Run the stage's loop on ``n`` processes with ``cfg`` (the stage's when None); returns
    the first one's result (raises Cancelled on a stop, like the loop itself)."""
    folder = folder_for(run_dir, plan.stage)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    atomic_write(folder / "spec.json", json.dumps({
        "cfg": cfg or ctx.cfg, "run_dir": str(run_dir), "plan": plan_to_json(plan),
        "engine": run_layout.pid_file_text()}))
    env = dict(os.environ)
    # the processes share the cores; torch.distributed.run would give each a single thread
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    proc = subprocess.Popen(command(ctx.cfg, n, folder), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    tail: collections.deque[str] = collections.deque(maxlen=SUMMARY_LINES)
    copier = threading.Thread(target=_copy_output, args=(proc, tail), daemon=True)
    copier.start()
    relay = _Relay(ctx, folder / "events.jsonl")
    stop_sent = False
    try:
        while proc.poll() is None:
            relay.poll()
            if ctx.stop_requested() and not stop_sent:
                (folder / "stop").touch()  # each process finishes its step, the first saves
                stop_sent = True
            time.sleep(0.2)
    finally:
        _end_stragglers(proc)
        copier.join(timeout=5)
        relay.poll()
    if proc.returncode != 0:
        return failed(ctx, plan, n, folder, proc.returncode, list(tail), relay)
    state = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    if state["status"] == "cancelled":
        raise Cancelled()
    return TrainResult(**state)


class _Relay:
    """The first process's events, re-emitted into the run's stream as they arrive; keeps
    what the stage's checks need should the processes end without a result."""

    def __init__(self, ctx: StageContext, path: Path) -> None:
        self.ctx, self.reader = ctx, protocol.EventReader(path)
        self.losses: list[float] = []
        self.grad_norms: list[float] = []
        self.peak_gb = 0.0

    def poll(self) -> None:
        for ev in self.reader.poll():
            if ev.type == "metric":
                self.losses.append(ev.payload["values"].get("loss"))
                self.grad_norms.append(ev.payload["values"].get("grad_norm"))
            elif ev.type == "memory":
                self.peak_gb = max(self.peak_gb, ev.payload.get("rss_gb") or 0.0,
                                   ev.payload.get("device_gb") or 0.0)
            self.ctx.emit(ev.type, **ev.payload)


def _copy_output(proc: subprocess.Popen, tail: collections.deque) -> None:
    """The launcher's and processes' output into engine.log, keeping the last lines."""
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        tail.append(line)
        print(line, file=sys.stderr, flush=True)


def _end_stragglers(proc: subprocess.Popen) -> None:
    """Nothing of the launch outlives the stage: the launcher's whole session goes."""
    if proc.poll() is None:
        proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def failed(ctx: StageContext, plan: TrainPlan, n: int, folder: Path, code: int,
           tail: list[str], relay: _Relay) -> TrainResult:
    """A process died or failed: say which, how, and what it wrote last."""
    text = _culprit("\n".join(tail))
    rank = _field(text, "rank")
    exitcode = _field(text, "exitcode")
    cause = _field(text, "traceback") or f"exit code {exitcode or code}"
    who = f"training process {rank} of {n}" if rank is not None else "a training process"
    own = _stderr_tail(folder, rank)
    ctx.emit("error", message=f"{who} ended: {cause}; the stage stopped on every process",
             detail="\n".join([*own[-12:], *tail[-TAIL_LINES:]]),
             hint=("See engine.log (and ranks/<stage>/logs/) for every process's output; "
                   "continue with --resume from the last checkpoint."))
    return TrainResult(status="failed", losses=relay.losses, grad_norms=relay.grad_norms,
                       steps=len(relay.losses), peak_memory_gb=relay.peak_gb,
                       budget_gb=budget_gb(ctx.cfg),
                       device_error=f"{who}: {cause}", placement=f"{n} processes")


def _culprit(text: str) -> str:
    """The launcher's entry for the process that ended the stage.

    A process killed from outside (SIGKILL by the OOM killer, a segfault) is the one, even
    when a peer's "connection closed" traceback reached the launcher first and became its
    "Root Cause"; SIGTERM is what the launcher itself sends the rest. Otherwise the root cause
    (the first failure observed) is the one."""
    summary = text[text.find("Failures:"):] if "Failures:" in text else text
    entries = re.split(r"^\s*\[\d+\]:\s*$", summary, flags=re.MULTILINE)[1:]
    for entry in entries:
        code = _field(entry, "exitcode")
        if code is not None and code.lstrip("-").isdigit() and int(code) < 0 \
                and int(code) != -signal.SIGTERM:
            return entry
    return text[text.rfind("Root Cause"):] if "Root Cause" in text else text


def _field(text: str, name: str) -> str | None:
    """A field of torch.distributed.run's failure summary ("rank      : 1 (local_rank: 1)")."""
    m = re.search(rf"^\s*(?:\[\w+\]:)?\s*{name}\s*:\s*(.+?)\s*$", text, re.MULTILINE)
    if m is None:
        return None
    value = m.group(1)
    return value.split()[0] if name in ("rank", "exitcode") else value


def _stderr_tail(folder: Path, rank: str | None) -> list[str]:
    if rank is None:
        return []
    for path in sorted((folder / "logs").glob(f"**/attempt_*/{rank}/stderr.log")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [f"{path.relative_to(folder.parent.parent)}:", *lines[-TAIL_LINES:]]
    return []
