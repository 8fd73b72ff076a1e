"""One module per checklist stage; :func:`runner` finds the one for a stage id."""

from __future__ import annotations

import importlib
from typing import Callable

from engine.stages.base import StageContext, skip_stage


def runner(stage_id: str) -> Callable[[StageContext], str]:
    """The stage's ``run`` function; a checklist stage with no module to run it skips every
    item with the reason, never passes it."""
    name = f"engine.stages.{stage_id}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the stage is there but something it imports is not
            raise

        def not_yet(ctx: StageContext) -> str:
            return skip_stage(ctx, stage_id, f"the {stage_id} stage is not available in this "
                                             "version of web4tui yet")
        return not_yet
    return module.run
