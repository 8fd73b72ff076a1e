"""``web4tui export --model DIR``: stage 6 on any supported HF folder, without a run.

Converts, quantizes and proves the model exactly as the stage does for a run (there is no
adapter, so the merge item is skipped), printing plain lines: progress on stderr, the
checklist and the files written on stdout.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from engine import config, models
from engine.event_text import StagePrinter
from engine.export import ExportError
from engine.export.convert import architecture
from engine.runs import outputs_dir
from engine.stages.base import StageContext


def export_main(model: str, quant: str | None, out: str | None, config_file: str | None,
                sets: list[str]) -> int:
    cfg = config.load(config_file, list(sets) + ([f"export.quant={quant}"] if quant else []))
    try:
        model_dir = models.resolve(model, cfg["model"]["cache_dir"])
        architecture(model_dir)  # refuses unsupported architectures by name, before any work
    except (models.ModelError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model_dir).name).strip("-.") or "model"
    target = Path(out) if out else outputs_dir(cfg) / "exports" / name

    from engine.stages.export import export_model

    print(f"web4tui export — {model_dir} → {target}", flush=True)
    ctx = StageContext(cfg=cfg, emit=StagePrinter(cfg))
    ctx.check("export.merge", "skip", detail="no adapter: the model is converted as it is")
    status = export_model(ctx, Path(model_dir), target, stem=name)
    return 1 if status == "failed" else 0
