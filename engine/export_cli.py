"""``web4tui export --model DIR``: stage 6 on any supported HF folder, without a run.

Converts, quantizes and proves the model exactly as the stage does for a run (there is no
adapter, so the merge item is skipped), printing plain lines: progress on stderr, the
checklist and the files written on stdout.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

from engine import checklist, config, models
from engine.export import ExportError
from engine.export.convert import architecture
from engine.runs import outputs_dir
from engine.stages.base import StageContext

GLYPH = {"pass": "✓", "fail": "✗", "warn": "!", "skip": "-"}


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
    last = [0.0]

    def emit(type: str, **payload: Any) -> None:
        if type == "progress":
            now = time.monotonic()
            if now - last[0] >= 2.0 or (payload.get("total") and
                                         payload.get("done") == payload.get("total")):
                last[0] = now
                print(f"  {payload.get('message', '')} {payload.get('done')}/{payload.get('total')}"
                      f" {payload.get('unit')}", file=sys.stderr, flush=True)
        elif type == "log":
            print(f"  {payload.get('message')}", file=sys.stderr, flush=True)
        elif type == "artifact":
            print(f"wrote {payload['kind']}: {payload['path']}", flush=True)
        elif type == "check":
            item = checklist.ITEMS[payload["item"]]
            value = payload.get("value")
            print(f"{GLYPH[payload['status']]} {payload['status'].upper():<4} "
                  f"{checklist.render(item.title, cfg)}" + (f" — {value}" if value else ""),
                  flush=True)
            detail = payload.get("detail")
            if payload["status"] in ("fail", "skip") and isinstance(detail, str):
                print("       " + detail.replace("\n", "\n       "), flush=True)
            elif isinstance(detail, dict) and payload["status"] == "fail" and "table" in detail:
                print("       " + detail["table"].replace("\n", "\n       "), flush=True)

    from engine.stages.export import export_model

    print(f"web4tui export — {model_dir} → {target}", flush=True)
    ctx = StageContext(cfg=cfg, emit=emit)
    ctx.check("export.merge", "skip", detail="no adapter: the model is converted as it is")
    status = export_model(ctx, Path(model_dir), target, stem=name)
    return 1 if status == "failed" else 0
