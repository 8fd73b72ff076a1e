"""What every stage gets (a context) and gives back (a status), and the skip stage.

A stage is a module with ``run(ctx) -> str`` returning a stage status (ok/failed/cancelled/
skipped). It reports through ``ctx.emit`` only; the engine wraps it with ``stage_started`` /
``stage_finished`` and records the outcome in ``state.json``.
"""

from __future__ import annotations

from engine import checklist
from engine.context import Cancelled, Emit, StageContext

__all__ = ["Cancelled", "Emit", "StageContext", "skip_stage"]


def skip_stage(ctx: StageContext, stage_id: str, reason: str) -> str:
    """Report every item of a stage as skipped with the reason — never as a pass."""
    for item in checklist.stage(stage_id).items:
        ctx.check(item.id, "skip", detail=reason)
    return "skipped"
