"""Stage 5 on a run with a LoRA adapter over a tiny random model (2 layers, default tokenizer):
the stage's checks, files and events, and `web4tui evaluate --run` agreeing with it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from engine import call_format, config, models  # noqa: E402
from engine.runs import Run  # noqa: E402
from engine.worker import run_one  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("evalstage")
    tok = models.load_tokenizer(models.resolve("default"))
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        pad_token_id=2, eos_token_id=2, bos_token_id=1))
    model_dir = root / "tiny"
    base.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    outputs = root / "outputs"
    run_dir = outputs / "tiny-run"
    peft.save_pretrained(run_dir / "lora")
    cfg = config.load(None, [f"model.id={json.dumps(str(model_dir))}",
                             "eval.max_per_bucket=2", "eval.max_new_tokens=6",
                             f"data.eval=[{json.dumps(str(ROOT / 'data' / 'eval'))}]",
                             f"data.tools={json.dumps(str(ROOT / 'data' / 'tools.json'))}",
                             f"eval.ruff_config={json.dumps(str(ROOT / 'data' / 'ruff.toml'))}"])
    (run_dir / "config.toml").write_text(config.dumps(cfg))
    return outputs, run_dir, cfg


def test_the_eval_stage_scores_the_runs_adapter(tiny_run: tuple, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    outputs, run_dir, cfg = tiny_run
    monkeypatch.setenv("WEB4TUI_OUTPUTS", str(outputs))
    # Say the adapter was trained on <tool_call> blocks: its ChatML template cannot serve that.
    call_format.record_trained(run_dir / "lora", "qwen", "{{ qwen }}")
    events: list[dict[str, Any]] = []
    status = run_one("eval", cfg, lambda type, **p: events.append({"type": type, **p}),
                     lambda: False, Run(run_dir))
    checks = {e["item"]: e for e in events if e["type"] == "check"}
    assert set(checks) == {"eval.tool_json_valid", "eval.tool_correct", "eval.tool_neg",
                           "eval.style_lint", "eval.style_ast", "eval.guardrail",
                           "eval.mixed", "eval.tool_format", "eval.logged"}
    assert checks["eval.tool_format"]["status"] == "fail"
    assert checks["eval.tool_format"]["value"] == ("trained on qwen, but the model's chat "
                                                   "template parses json")
    assert status == "failed"  # a random model misses the targets…
    assert checks["eval.tool_json_valid"]["status"] == "fail"
    tool = checks["eval.tool_json_valid"]  # the number beside the text: a share, as judged
    assert 0 <= tool["measured"] < 0.95
    assert tool["value"].startswith(f"{100 * tool['measured']:.1f}%")
    assert checks["eval.logged"]["status"] == "pass"  # …and says so in the log
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == 10
    assert {e["kind"] for e in events if e["type"] == "artifact"} == {"report"}
    assert any(e["type"] == "sample" for e in events)
    rows = (run_dir / "eval" / "records.jsonl").read_text().splitlines()
    assert len(rows) == 10 and all(json.loads(r)["reasons"] or json.loads(r)["passed"]
                                   for r in rows)
    history = list(csv.DictReader(open(outputs / "eval_history.csv")))
    assert [h["run"] for h in history] == ["tiny-run"]

    # The command line on the same run gives the same figures.
    env = {**os.environ, "WEB4TUI_OUTPUTS": str(outputs), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "web4tui", "evaluate", "--run", "tiny-run",
                           "--json"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)
    assert proc.returncode == 1, proc.stderr
    stage_metrics = json.loads((run_dir / "eval" / "summary.json").read_text())["metrics"]
    assert json.loads(proc.stdout)["metrics"] == stage_metrics
