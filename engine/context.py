"""What a stage, a training loop and a backend are handed to report with: the context, and the
exception a graceful stop raises.

It sits below the stages, the training loop and the backends, so each of them can take a
context without importing the layer above.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from engine import checklist

Emit = Callable[..., Any]
#: progress(done, total, note): how far a long step is, for every step that reports one. The
#: note is what the step is doing (a message) or, where it answers records one by one, the
#: seconds left (None until it can tell).
Progress = Callable[[float, float, "str | float | None"], None]


class Cancelled(Exception):
    """Raised inside a stage when a graceful stop was requested."""


@dataclass
class StageContext:
    cfg: dict[str, Any]
    emit: Emit
    stop_requested: Callable[[], bool] = lambda: False
    run_dir: Any = None  # pathlib.Path of the run folder, or None for `web4tui check`
    resume: bool = False  # continue training stages from their last checkpoint
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("engine"))
    checks: list[dict[str, Any]] = field(default_factory=list)
    #: what the stage did, in figures, for its ``stage_finished`` event (a stage fills it in)
    summary: dict[str, Any] = field(default_factory=dict)

    def check(self, item: str, status: str, value: Any = None, target: Any = None,
              detail: Any = None, measured: float | None = None) -> None:
        """Prove (or fail, warn, skip) one checklist item. ``value`` is the text shown;
        ``measured``, where there is one, the number judged (readers compute with it)."""
        if item not in checklist.ITEMS:
            raise KeyError(f"unknown checklist item {item!r}")
        if target is None:
            target = checklist.render(checklist.ITEMS[item].target, self.cfg)
        self.checks.append({"item": item, "status": status})
        extra = {} if measured is None else {"measured": measured}
        self.emit("check", item=item, status=status, value=value, target=target, detail=detail,
                  **extra)

    def raise_if_stopped(self) -> None:
        if self.stop_requested():
            raise Cancelled()

    def status_from_checks(self) -> str:
        statuses = {c["status"] for c in self.checks}
        if "fail" in statuses:
            return "failed"
        if statuses and statuses <= {"skip"}:
            return "skipped"
        return "ok"
