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
from typing import Any

from engine import checklist, config
from engine.deploy import gguf_meta
from engine.records import load_tools
from engine.render import Renderer
from engine.runs import outputs_dir
from engine.stages.base import StageContext

GLYPH = {"pass": "✓", "fail": "✗", "warn": "!", "skip": "-"}


def _printer(cfg: dict[str, Any]) -> Any:
    def emit(type: str, **payload: Any) -> None:
        if type == "log":
            print(f"  {payload.get('message')}", file=sys.stderr, flush=True)
        elif type == "artifact":
            print(f"wrote {payload['kind']}: {payload['path']}", flush=True)
        elif type == "check":
            title = checklist.render(checklist.ITEMS[payload["item"]].title, cfg)
            value = payload.get("value")
            print(f"{GLYPH[payload['status']]} {payload['status'].upper():<4} {title}"
                  + (f" — {value}" if value else ""), flush=True)
            detail = payload.get("detail")
            if isinstance(detail, str) and payload["status"] in ("fail", "skip"):
                print("       " + detail.replace("\n", "\n       "), flush=True)
            elif isinstance(detail, dict):
                _show_detail(detail)
    return emit


def _show_detail(detail: dict[str, Any]) -> None:
    """The lines a person needs from an item's detail: the Ollama path and why, the server's
    figures and each smoke answer as the client received it."""
    if "why" in detail:
        print(f"       {detail['why']}", flush=True)
    figures = {k: detail[k] for k in ("startup_s", "smoke_s") if k in detail}
    if figures:
        print("       " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
    for a in detail.get("answers", []):
        got = json.dumps(a["calls"], ensure_ascii=False) if a["calls"] else repr(a["content"][:160])
        print(f"       {a['record_id']} ({a['expect']}): finish_reason {a['finish_reason']}, "
              f"{a['seconds']:.1f} s, {'tool_calls ' if a['calls'] else 'content '}{got}"
              + (f" — {a['verdict']}" if a["verdict"] else ""), flush=True)


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

    ctx = StageContext(cfg=cfg, emit=_printer(cfg))
    status = deploy_model(ctx, path, rend, None, target, path.name)
    return 1 if status == "failed" else 0
