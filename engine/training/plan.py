"""What a training stage asks of the loop (:mod:`engine.training.loop`), what it gets back,
the seeded data order, sample verdicts, and a checkpoint's history on resume.

Stdlib-only apart from the scorers: importing it never loads torch or mlx, so a run pulls in
only the library of the backend it trains with.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.records import Record


@dataclass
class TrainPlan:
    """What one training stage asks of the trainer."""

    stage: str
    grad_accum: int
    epochs: int
    max_steps: int | None  # dry run: the step cap (it cycles over its samples)
    stop_when: Callable[[list[float]], bool] | None  # dry run: loss target reached
    checkpoint_root: Path
    adapter_dir: Path
    resume: bool = False


@dataclass
class TrainResult:
    status: str  # ok / failed / cancelled
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    steps: int = 0
    total_steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    nan_step: int | None = None
    device_error: str | None = None
    memory_stop: str | None = None
    peak_memory_gb: float = 0.0
    budget_gb: float = 0.0
    placement: str = ""
    resumed_from: int | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class SampleJudge:
    """Verdicts on sample generations by the stage-5 scorers (rules built once per run)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self._rules: Any = None

    def __call__(self, record: Record, answer: str) -> dict[str, Any]:
        from engine.evaluate.core import rules_for
        from engine.evaluate.report import verdict_payload
        from engine.evaluate.scorers import score

        if self._rules is None:
            self._rules = rules_for(self.cfg)
        return verdict_payload(score(record, answer, self._rules))


def read_resume_state(ctx: Any, last: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's trainer state, warning about every setting that changed since."""
    from engine.training import checkpoint as ckpt

    state = ckpt.read_state(last)
    diff = ckpt.config_differences(state.get("settings", {}), settings)
    if diff:
        ctx.emit("log", level="warning", message=(
            f"the config differs from checkpoint {last.name}: " + "; ".join(
                f"{k}: {a!r} → {b!r}" for k, (a, b) in diff.items())
            + " — continuing with the current config"))
    return state


def restore_history(ctx: Any, result: TrainResult, state: dict[str, Any], stage: str,
                    last: Path, total_steps: int) -> int:
    """Put a checkpoint's loss history back into the result; returns the step to continue at."""
    result.losses = list(state["losses"])
    result.grad_norms = list(state["grad_norms"])
    result.tokens = int(state.get("tokens", 0))
    result.seconds = float(state.get("seconds", 0.0))
    result.resumed_from = int(state["step"])
    ctx.emit("log", level="info", message=f"resumed {stage} from {last.name} "
             f"(step {state['step']} of {total_steps})")
    return int(state["step"])


@functools.lru_cache(maxsize=4)
def epoch_order(seed: int, stage: str, n: int, epoch: int) -> tuple[int, ...]:
    """The seeded record order of one epoch — the same for both backends and for a resumed
    run, so a run continues exactly where an uninterrupted one would be."""
    order = list(range(n))
    random.Random(f"{seed}:{stage}:epoch{epoch}").shuffle(order)
    return tuple(order)


def example_at(seed: int, stage: str, n: int, micro: int) -> int:
    """Index of the example for micro-batch number ``micro``."""
    epoch, pos = divmod(micro, n)
    return epoch_order(seed, stage, n, epoch)[pos]
