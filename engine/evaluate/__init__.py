"""Stage 5 evaluation: scorers, answer sources, batched generation, reports and the mini gates.

The entry points other stages call:

    from engine.evaluate import evaluate, score_answers, load_records
    result = evaluate(records, answer_fn, cfg)     # answer_fn(records) -> list[str]
    result.metrics, result.targets(cfg), result.rows
    points_apart(result_a, result_b)               # export parity, in points per metric

Answer sources (engine.evaluate.sources): ModelSource(model, tokenizer, cfg) for a model in
memory, open_hf(folder, cfg) for an adapter or merged folder, OllamaSource(name, cfg),
PredictionsSource(path); GGUFSource(path, cfg) in engine.evaluate.gguf_source.
Mini gates: engine.evaluate.gates.prove_mini.

Heavy libraries (torch, llama_cpp, ollama) are imported only by the sources that need them.
"""

from engine.evaluate.core import (
    TARGETS, AnswerFn, EvalResult, Row, evaluate, load_records, metrics, points_apart,
    rules_for, score_answers, score_records, select,
)
from engine.evaluate.scorers import Rules, Verdict, score

__all__ = ["TARGETS", "AnswerFn", "EvalResult", "Row", "Rules", "Verdict", "evaluate",
           "load_records", "metrics", "points_apart", "rules_for", "score", "score_answers", "score_records", "select"]
