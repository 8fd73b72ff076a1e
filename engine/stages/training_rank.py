"""One of several training processes, as ``torch.distributed.run`` starts it:

    python -m torch.distributed.run --standalone --nproc-per-node N \\
        -m engine.stages.training_rank RUN/ranks/STAGE/spec.json

It joins the others, prepares the same records, loads the same model and runs the one
training loop on its share of every step (:mod:`engine.training.loop`). The first process
writes the stage's events into ``events.jsonl`` beside the spec (the engine relays them into
the run's stream), the checkpoints, the adapter and ``result.json``; the others log to the
run's ``engine.log``. A stop is the ``stop`` file beside the spec, SIGTERM, or the engine
that started the launch having gone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import record

from engine import protocol, run_layout
from engine.backends import distributed
from engine.context import Cancelled, StageContext
from engine.runs import atomic_write
from engine.stages.training import backend_for, materials
from engine.training import loop
from engine.training.data import probe_records
from engine.training.ranks import plan_from_json

log = logging.getLogger("engine")


class _Stop:
    """A stop asked for by the engine (the file), a signal, or the engine's absence."""

    def __init__(self, folder: Path, engine_pid_text: str) -> None:
        self.file, self.engine, self.signalled = folder / "stop", engine_pid_text, False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signalled = True

    def __call__(self) -> bool:
        return self.signalled or self.file.exists() or run_layout.live_pid(self.engine) is None


def _log_to(path: Path, rank: int) -> None:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _logged(type: str, **payload: Any) -> None:
    """What a process other than the first does with an event: its words go to engine.log."""
    if type in ("log", "error"):
        log.log(logging.WARNING if type == "error" else logging.INFO, "%s",
                payload.get("message"))


@record  # a failure's traceback reaches the launcher's summary, and so the stage's error
def main(spec_path: str) -> int:
    spec_file = Path(spec_path)
    folder = spec_file.parent
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    cfg, run_dir = spec["cfg"], Path(spec["run_dir"])
    plan = plan_from_json(spec["plan"])
    world = distributed.join(cfg)
    _log_to(run_dir / "engine.log", world.rank)
    writer = protocol.EventWriter(folder / "events.jsonl", run_dir.name) if world.main else None
    if writer is not None:
        writer.stage = plan.stage
    emit = writer.emit if writer is not None else _logged
    ctx = StageContext(cfg=cfg, emit=emit, stop_requested=_Stop(folder, spec["engine"]),
                       run_dir=run_dir, resume=plan.resume)
    log.info("training process %s of %s (%s, %s)", world.rank, world.size, world.backend,
             world.strategy)
    try:
        model_dir, tok, data, renderer = materials(ctx, plan.stage)
        backend = backend_for(cfg)(model_dir, tok, emit, world)
        try:
            result = loop.train(ctx, plan, data, backend, tok, probe_records(cfg), renderer,
                                world=world)
            state = dataclasses.asdict(result)
        except Cancelled:
            state = {"status": "cancelled"}
        if world.main:
            atomic_write(folder / "result.json", json.dumps(state))
        distributed.leave()  # only after a clean end: with a peer gone it could wait
    finally:
        if writer is not None:
            writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
