"""Shared fixtures for the export and deploy tests: a tiny model and a run trained on it.

The tiny base is trained (seconds) to answer one held-out tool prompt — rendered exactly as
training renders it — with that record's tool-call JSON and the end-of-turn token; the run's
adapter is random and non-zero. So the deployed model has something real to say, and a wrong
template or a missing stop shows up as a wrong answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.tiny_models import build_adapter, build_tiny

ROOT = Path(__file__).resolve().parents[2]


def run_config(base: Path, outputs: Path, **export: Any) -> dict[str, Any]:
    from engine import config

    cfg = config.load()
    cfg["model"]["id"] = str(base)
    cfg["run"]["outputs_dir"] = str(outputs)
    cfg["data"]["eval"] = [str(ROOT / "data" / "eval")]
    cfg["data"]["tools"] = str(ROOT / "data" / "tools.json")
    cfg["export"].update({"quant": "q8_0", "parity_prompts": 6, "parity_max_tokens": 384,
                          "parity_eval_per_bucket": 2, "eval_max_new_tokens": 24})
    cfg["export"].update(export)
    return cfg


def smoke_record(cfg: dict[str, Any]) -> Any:
    from engine.export import prompts

    recs = sorted((r for r in prompts.eval_records(cfg) if r.expect == "tool"), key=lambda r: r.id)
    return recs[0]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama that answers the smoke-test tool prompt (rendered as training renders it)."""
    from engine.export import prompts

    folder = tmp_path_factory.mktemp("tiny") / "llama"
    plain = build_tiny(tmp_path_factory.mktemp("tok") / "llama", "llama")
    cfg = run_config(plain, folder.parent)
    r = prompts.renderer(plain, cfg).render(smoke_record(cfg))
    return build_tiny(folder, "llama", hidden=64, train=[(r.prompt, r.completion)])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> tuple[Path, dict[str, Any]]:
    """A run folder with outputs/<run>/lora (random, non-zero) on the tiny base."""
    outputs = tmp_path_factory.mktemp("outputs")
    run = outputs / "tiny-run"
    run.mkdir()
    build_adapter(tiny_base, run / "lora")
    return run, run_config(tiny_base, outputs)


def stage_ctx(cfg: dict[str, Any], run: Path | None) -> tuple[Any, list[dict[str, Any]]]:
    from engine.stages.base import StageContext

    events: list[dict[str, Any]] = []
    ctx = StageContext(cfg=cfg, emit=lambda type, **p: events.append({"type": type, **p}),
                       run_dir=run)
    return ctx, events


def checks(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["item"]: e for e in events if e["type"] == "check"}
