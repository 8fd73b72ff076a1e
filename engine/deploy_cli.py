"""``web4tui deploy --gguf FILE``: stage 7 on a GGUF the user already has, without a run.

The tokenizer and chat template come from the GGUF itself; the Modelfile is written to
``outputs/deployments/<name>/`` (``--out`` elsewhere) and proved, the model goes to Ollama when
one answers, and the smoke test runs there or on llama-server. Plain lines: progress on
stderr, the checklist and the files written on stdout.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from engine import config
from engine.deploy import gguf_meta
from engine.event_text import StagePrinter
from engine.records import load_tools
from engine.render import Renderer
from engine.runs import outputs_dir
from engine.stages.base import StageContext


def deploy_main(gguf: str, name: str | None, out: str | None, config_file: str | None,
                sets: list[str]) -> int:
    extra = [f"deploy.name={json.dumps(name)}"] if name else []
    cfg = config.load(config_file, list(sets) + extra)
    path = Path(gguf).expanduser()
    try:
        tok = gguf_meta.tokenizer(path) if path.is_file() else None
    except gguf_meta.GGUFError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if tok is None:
        print(f"error: {path}: GGUF file not found", file=sys.stderr)
        return 2
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.") or "model"
    target = Path(out) if out else outputs_dir(cfg) / "deployments" / stem
    rend = Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"].get("tools")))
    print(f"web4tui deploy — {path} → {target}", flush=True)

    from engine.stages.deploy import deploy_model

    # Ollama's upload steps carry no counts: the checklist says how it went.
    ctx = StageContext(cfg=cfg, emit=StagePrinter(cfg, progress_every_s=None))
    status = deploy_model(ctx, path, rend, None, target, path.name)
    return 1 if status == "failed" else 0
