"""Answer sources that need no model run: Ollama (a stand-in client) and predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import config, models
from engine.evaluate import load_records, points_apart, score_answers
from engine.evaluate.sources import OllamaSource, PredictionsSource, SourceError
from engine.records import load_tools
from engine.render import Renderer

ROOT = Path(__file__).resolve().parents[2]


class FakeOllama:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def generate(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"response": "I can't help with that."}


def test_ollama_gets_the_rendered_prompt_raw_and_greedy() -> None:
    cfg = config.defaults()
    tok = models.load_tokenizer(models.resolve("default"))
    records, _ = load_records([ROOT / "data" / "eval" / "tool.jsonl"])
    client = FakeOllama()
    src = OllamaSource("web4-coder", cfg, tokenizer=tok, client=client)
    answers = src(records[:2])
    renderer = Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"]["tools"]))
    assert answers == ["I can't help with that."] * 2
    call = client.calls[0]
    assert call["raw"] is True and call["model"] == "web4-coder"
    assert call["prompt"] == renderer.render(records[0]).prompt == src.last_prompts[0]
    assert call["options"]["temperature"] == 0 and "<|im_end|>" in call["options"]["stop"]


def test_ollama_errors_say_what_to_do() -> None:
    class Down:
        def generate(self, **kwargs: Any) -> None:
            raise ConnectionError("connection refused")

    cfg = config.defaults()
    tok = models.load_tokenizer(models.resolve("default"))
    records, _ = load_records([ROOT / "data" / "eval" / "tool.jsonl"])
    with pytest.raises(SourceError, match="ollama serve"):
        OllamaSource("m", cfg, tokenizer=tok, client=Down())(records[:1])


def test_same_answers_same_numbers_and_parity_in_points(tmp_path: Path) -> None:
    cfg = config.defaults()
    records, _ = load_records([ROOT / "data" / "eval"])
    answers = [r.output for r in records]
    answers[next(i for i, r in enumerate(records) if r.bucket == "tool")] = "prose"
    preds = tmp_path / "p.jsonl"
    from engine.evaluate.sources import write_predictions
    write_predictions(preds, records, answers)
    a = score_answers(records, answers, cfg)
    b = score_answers(records, PredictionsSource(preds)(records), cfg)
    assert a.metrics == b.metrics
    perfect = score_answers(records, [r.output for r in records], cfg)
    apart = points_apart(a, perfect)
    assert apart["tool.json_valid"] == 2.0 and apart["guardrail.accuracy"] == 0.0
