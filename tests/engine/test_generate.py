"""Batched greedy generation gives token-for-token the answers of one-at-a-time HF generate.

On a tiny random model (2 layers) with the default model's tokenizer and the real eval prompts
(lengths from ~50 to ~600 tokens, so batches are padded), including early stops.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from engine import config, models  # noqa: E402
from engine.evaluate import load_records  # noqa: E402
from engine.evaluate.generate import (  # noqa: E402
    common_prefix, encode_prompts, generate_ids, generate_one_by_one, generate_text,
    plan_batches, stop_token_ids,
)
from engine.records import load_tools  # noqa: E402
from engine.render import Renderer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny() -> tuple:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = models.load_tokenizer(models.resolve("default"))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=4096, pad_token_id=2, eos_token_id=2,
                      bos_token_id=1)
    model = LlamaForCausalLM(cfg).eval()
    run_cfg = config.defaults()
    renderer = Renderer(tok, run_cfg["data"]["system_prompt"],
                        load_tools(ROOT / "data" / "tools.json"))
    records, _ = load_records([ROOT / "data" / "eval"])
    prompts = encode_prompts(tok, [renderer.render(r).prompt for r in records[::25]])
    return model, tok, prompts, [renderer.frame(r) for r in records[::25]]


def test_stop_tokens_include_the_end_of_turn_marker(tiny: tuple) -> None:
    model, tok, _, _ = tiny
    assert tok.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(tok, model)


def test_batched_equals_one_at_a_time(tiny: tuple) -> None:
    model, tok, prompts, groups = tiny
    assert len({len(p) for p in prompts}) > 3  # padding is exercised
    stop = stop_token_ids(tok, model)
    single = generate_one_by_one(model, prompts, max_new_tokens=12, stop_ids=stop, pad_id=2)
    seen = []
    batched = generate_ids(model, prompts, max_new_tokens=12, stop_ids=stop, pad_id=2,
                           batch_size=4, progress=lambda d, t, eta: seen.append((d, t)))
    assert batched == single
    assert seen[-1] == (len(prompts), len(prompts)) and len(seen) == 3
    # Grouped by template frame: the tool listing is computed once per batch, and groups
    # prefilled apart decode together (batch 5 straddles the groups).
    assert len(set(groups)) >= 2
    for size in (4, 5, 10):
        grouped = generate_ids(model, prompts, max_new_tokens=12, stop_ids=stop, pad_id=2,
                               batch_size=size, groups=groups)
        assert grouped == single, size


def test_batches_keep_groups_together_longest_first() -> None:
    assert plan_batches([5, 9, 7, 3, 8], 2, ["a", "b", "a", "b", "a"]) == [[4, 2], [0, 1], [3]]
    assert plan_batches([1, 3, 2], 8) == [[1, 2, 0]]
    assert common_prefix([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix([[1, 2], [1, 2, 3]]) == 1  # each keeps one token of its own


def test_rows_that_stop_early_leave_the_batch_without_changing_the_others(tiny: tuple) -> None:
    model, tok, prompts, groups = tiny
    base_stop = stop_token_ids(tok, model)
    free = generate_one_by_one(model, prompts, max_new_tokens=12, stop_ids=base_stop, pad_id=2)
    # Make tokens that some answers produce mid-way end-of-turn tokens: those rows stop early.
    extra = {free[0][3], free[5][6]}
    stop = base_stop + sorted(extra)
    single = generate_one_by_one(model, prompts, max_new_tokens=12, stop_ids=stop, pad_id=2)
    batched = generate_ids(model, prompts, max_new_tokens=12, stop_ids=stop, pad_id=2,
                           batch_size=5)
    assert batched == single
    assert len(single[0]) == 3 and min(len(s) for s in single) < max(len(s) for s in single)


def test_text_answers_drop_the_stop_token(tiny: tuple) -> None:
    model, tok, prompts, groups = tiny
    texts = generate_text(model, tok, [tok.decode(prompts[0])], max_new_tokens=5)
    assert len(texts) == 1 and "<|im_end|>" not in texts[0]
