"""Stage 8 — advice: read what the run recorded and say what to change, with the evidence.

Inputs: the run's own ``events.jsonl`` (``metric`` and ``memory`` events of the training
stages), its evaluation (``eval/records.jsonl``) and the project's ``eval_history.csv``. Each
rule that fires becomes an ``advice`` event (with ``change``) and a ``warn`` on its item; a
rule with nothing to judge is ``skip``; otherwise ``pass`` — no trigger.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from engine import advice, checklist, protocol
from engine.evaluate.report import read_history
from engine.runs import outputs_dir
from engine.stages.base import StageContext, skip_stage


def gather(run_dir: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    metrics: dict[str, list[dict[str, Any]]] = defaultdict(list)
    memory: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in protocol.read_events(run_dir / "events.jsonl"):
        if ev.stage and ev.type == "metric":
            metrics[ev.stage].append(ev.payload)
        elif ev.stage and ev.type == "memory":
            memory[ev.stage].append({"ts": ev.ts, **ev.payload})
    rows = []
    records = run_dir / "eval" / "records.jsonl"
    if records.exists():
        rows = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    return {"metrics": dict(metrics), "memory": dict(memory), "rows": rows,
            # Only evaluations of runs: a plateau is about training again, not loose files.
            "history": [h for h in read_history(outputs_dir(cfg) / "eval_history.csv")
                        if h.get("run")]}


def run(ctx: StageContext) -> str:
    if ctx.run_dir is None:
        return skip_stage(ctx, "advice", "needs a run folder")
    found = gather(Path(ctx.run_dir), ctx.cfg)
    given = advice.advise(ctx.cfg, **found)
    fired = {a.rule: a for a in given}
    for a in given:
        ctx.emit("advice", **a.payload())
    has = {
        "advice.diverged": bool(found["metrics"]), "advice.loss_stagnates": bool(found["metrics"]),
        "advice.memory": bool(found["memory"]),
        "advice.prose_not_json": bool(found["rows"]), "advice.naming_drift": bool(found["rows"]),
        "advice.refusal_inconsistent": bool(found["rows"]),
        "advice.eval_plateau": len(found["history"]) >= ctx.cfg["advice"]["plateau_runs"],
    }
    for item in checklist.stage("advice").items:
        if item.id in fired:
            a = fired[item.id]
            ctx.check(item.id, "warn", a.symptom,
                      detail={"action": a.action, "evidence": a.evidence, "change": a.change})
        elif has.get(item.id):
            ctx.check(item.id, "pass", "no trigger")
        else:
            ctx.check(item.id, "skip", detail="nothing recorded yet for this rule")
    return ctx.status_from_checks()
