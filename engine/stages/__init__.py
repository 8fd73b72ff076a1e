"""One module per checklist stage; :func:`runner` finds the one for a stage id."""

from __future__ import annotations

import importlib
from typing import Callable

from engine import checklist
from engine.stages.base import StageContext, skip_stage


def runner(stage_id: str) -> Callable[[StageContext], str]:
    """The stage's ``run`` function, or one that skips every item with the reason."""
    if stage_id not in checklist.IMPLEMENTED:
        def not_yet(ctx: StageContext) -> str:
            return skip_stage(ctx, stage_id, f"the {stage_id} stage is not available in this "
                                             "version of web4tui yet")
        return not_yet
    module = importlib.import_module(f"engine.stages.{stage_id}")
    return module.run
