"""Tiny deployable models: GGUFs that answer the deploy smoke test's two prompts.

One per chat format Ollama treats differently: the default model's plain ChatML (Ollama's
Go-template path, tool calls as ``{"tool", "arguments"}`` JSON) and Qwen2.5's tool-capable
template (the native path, ``<tool_call>`` blocks). Each tiny model is trained (seconds) on the
smoke test's tool and tool_neg prompts exactly as training renders them, then converted to a
GGUF with the built-in converter — so llama-server serves something that really answers, and a
wrong rendering on the server's side shows up as a wrong answer.

The eval data is a small folder of its own: one tool record, one short tool_neg record, and
a tools file with the one tool they need (short prompts keep the tiny models quick).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.export_fixtures import run_config
from tests.support.tiny_models import build_tiny

ROOT = Path(__file__).resolve().parents[2]
QWEN_TEMPLATE = ROOT / "tests" / "fixtures" / "chat_templates" / "qwen2.5-coder.jinja"

TOOL_RECORD = {"id": "tool-smoke-0001", "task_type": "tool",
               "instruction": "Ship checkout-api v1.2.3 to staging with 3 replicas.",
               "input": "", "output": json.dumps({"tool": "deploy_service", "arguments": {
                   "service": "checkout-api", "version": "v1.2.3", "env": "staging",
                   "replicas": 3}})}
NEG_RECORD = {"id": "tool_neg-smoke-0001", "task_type": "tool_neg",
              "instruction": "What is a rolling deploy, in one sentence?", "input": "",
              "output": "A rolling deploy replaces replicas one at a time."}


@dataclasses.dataclass
class Deployable:
    model_dir: Path
    gguf: Path
    cfg: dict[str, Any]


def smoke_data(root: Path) -> tuple[Path, Path]:
    """(eval folder, tools file) holding exactly what the smoke test asks."""
    root.mkdir(parents=True, exist_ok=True)
    tools = [t for t in json.loads((ROOT / "data" / "tools.json").read_text())
             if t["name"] == "deploy_service"]
    (root / "tools.json").write_text(json.dumps(tools))
    ev = root / "eval"
    ev.mkdir(exist_ok=True)
    (ev / "tool.jsonl").write_text(json.dumps(TOOL_RECORD) + "\n")
    (ev / "tool_neg.jsonl").write_text(json.dumps(NEG_RECORD) + "\n")
    return ev, root / "tools.json"


def build_deployable(root: Path, chat_template: str | None) -> Deployable:
    from engine.export import prompts
    from engine.export.convert import convert
    from engine.stages.deploy import smoke_records

    ev, tools = smoke_data(root / "data")
    plain = build_tiny(root / "plain", "llama", chat_template=chat_template)
    cfg = run_config(plain, root / "outputs")
    cfg["data"]["eval"] = [str(ev)]
    cfg["data"]["tools"] = str(tools)
    cfg["deploy"].update({"docker": False, "ollama_host": "http://127.0.0.1:9",
                          "smoke_max_tokens": 64, "server_threads": 2})
    rend = prompts.renderer(plain, cfg)  # tool answers in the format the template parses
    pairs = [(r.prompt, r.completion) for r in map(rend.render, smoke_records(cfg))]
    model = build_tiny(root / "model", "llama", hidden=64, chat_template=chat_template,
                       train=pairs)
    cfg["model"]["id"] = str(model)
    gguf = convert(model, root / "model.gguf").path
    return Deployable(model, gguf, cfg)


@pytest.fixture(scope="session")
def chatml_model(tmp_path_factory: pytest.TempPathFactory) -> Deployable:
    """The default model's ChatML (no tools in the template): Ollama's Go-template path."""
    return build_deployable(tmp_path_factory.mktemp("chatml"), None)


@pytest.fixture(scope="session")
def qwen_model(tmp_path_factory: pytest.TempPathFactory) -> Deployable:
    """Qwen2.5's tool-capable template: served natively, llama.cpp parses the calls."""
    return build_deployable(tmp_path_factory.mktemp("qwen"), QWEN_TEMPLATE.read_text())


@pytest.fixture(scope="session")
def server_binary() -> Path:
    """The llama-server `make setup` builds. Missing is a failure, not a skip: the suite's
    set-up builds it, so a missing binary means the set-up is broken."""
    from engine.deploy import llama_server as ls

    try:
        return ls.find_binary()
    except ls.ServerError as exc:
        pytest.fail(f"{exc}. The test suite needs it: run `make setup` (make test does).")
