"""What the next run started from the app will use: the overrides and the config they give.

The engine resolves and validates the config (``python -m engine config``), so the app shows
exactly what a run would get, and a mistake is reported before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from web4tui import engine_client
from web4tui.drill import short_path
from web4tui.runfolder import RunFolder

DEFAULT_MODEL = "SmolLM2-135M-Instruct (embedded)"


@dataclass
class NextRun:
    config: str | None = None  # --config F
    sets: list[str] = field(default_factory=list)  # --set k=v, in order; later ones win
    cfg: dict[str, Any] | None = None  # resolved; None until resolve() (then the run's own)

    @property
    def overridden(self) -> bool:
        return bool(self.config or self.sets)

    def resolve(self, run: RunFolder | None, extra: list[str] = ()) -> dict[str, Any]:
        """Resolve with the engine; raises engine_client.EngineError on a bad override."""
        base = self.config
        if base is None and run is not None and (run.root / "config.toml").exists():
            base = str(run.root / "config.toml")  # an existing run continues from its config
        cfg = engine_client.resolve_config(base, [*self.sets, *extra])
        self.sets.extend(extra)
        self.cfg = cfg
        return cfg


def describe(cfg: dict[str, Any] | None) -> str:
    """Data, model and backend in one line for the header."""
    if not cfg:
        return ""
    data, model, train = cfg.get("data", {}), cfg.get("model", {}), cfg.get("train", {})
    mid = str(model.get("id", ""))
    device = train.get("device", "auto")
    backend = str(train.get("backend", "auto")) + ("" if device == "auto" else f"/{device}")
    # The model last: a long hub id is what gets ellipsised on a narrow terminal.
    return (f"data {', '.join(short_path(str(p)) for p in data.get('train', []))} · eval "
            f"{', '.join(short_path(str(p)) for p in data.get('eval', [])) or 'none'} │ "
            f"backend {backend} │ "
            f"model {DEFAULT_MODEL if mid in ('', 'default') else short_path(mid)}")
