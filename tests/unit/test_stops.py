"""Every generation stops at the same tokens: training samples, stage 5 and export parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import models
from engine.evaluate.generate import stop_token_ids
from engine.stops import stop_ids, stop_tokens
from tests.support.tiny_models import default_tokenizer_dir


@pytest.fixture(scope="module")
def tok():
    return models.load_tokenizer(default_tokenizer_dir())


def test_a_chatml_model_stops_at_the_end_of_its_turn_and_at_the_start_of_the_next(tok) -> None:
    texts = stop_tokens(tok)
    assert texts[0] == tok.eos_token
    assert {"<|im_end|>", "<|im_start|>"} <= set(texts)
    assert stop_ids(tok) == [tok.convert_tokens_to_ids(t) for t in texts]


def test_stage_5_stops_where_training_samples_and_export_parity_do(tok) -> None:
    assert stop_token_ids(tok) == stop_ids(tok)


def test_the_eos_ids_of_the_model_folder_are_stops_too(tok, tmp_path: Path) -> None:
    extra = tok.convert_tokens_to_ids("<|endoftext|>")
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [extra]}))
    assert extra in stop_ids(tok, tmp_path)
    assert "<|endoftext|>" in stop_tokens(tok, tmp_path)


def test_a_marker_that_is_plain_text_in_the_vocabulary_is_no_stop() -> None:
    class Tok:
        eos_token, eos_token_id, all_special_tokens = "</s>", 0, ["</s>"]

        def get_vocab(self) -> dict[str, int]:
            return {"</s>": 0, "<|im_end|>": 5}

        def convert_ids_to_tokens(self, i: int) -> str:
            return {0: "</s>", 5: "<|im_end|>"}[i]

    assert stop_ids(Tok()) == [0]
    assert stop_tokens(Tok()) == ["</s>"]
