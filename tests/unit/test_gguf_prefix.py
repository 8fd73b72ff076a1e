"""How much of llama.cpp's cache a GGUF evaluation keeps for the next prompt: a cut at a row
block, never into the last answer, never more than llama.cpp still holds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine import config
from engine.evaluate.gguf_source import GGUFSource, row_block


def source(align: int, last: list[int], held: int) -> GGUFSource:
    src = object.__new__(GGUFSource)  # no GGUF: only the cut is under test
    cfg = config.defaults()
    cfg["eval"]["gguf_prefix_align"] = align
    src.cfg, src._last_prompt = cfg, last
    src.llm = SimpleNamespace(n_tokens=held, n_batch=512)
    return src


def test_the_cut_falls_on_a_row_block() -> None:
    last = list(range(100))
    assert source(4, last, 130)._reusable(last[:43] + [999] * 20) == 40
    assert source(16, last, 130)._reusable(last[:43] + [999] * 20) == 32
    assert source(1, last, 130)._reusable(last[:43] + [999] * 20) == 43


def test_the_last_answer_is_never_kept() -> None:
    # the next prompt repeats the last prompt and its answer (a multi-turn record): the
    # answer's tokens were decoded one at a time, a fresh context reads them as a prompt
    last = list(range(50))
    answer = list(range(500, 530))
    assert source(4, last, 80)._reusable(last + answer + [7] * 10) == 48


def test_nothing_is_kept_that_llama_cpp_no_longer_holds() -> None:
    last = list(range(100))
    assert source(4, last, 0)._reusable(last + [1]) == 0  # after a reset
    assert source(4, last, 30)._reusable(last + [1]) == 28


def test_one_token_is_always_left_to_read() -> None:
    last = list(range(40))
    assert source(4, last, 60)._reusable(last) == 36  # the same prompt again: 39 -> 36


def test_the_default_follows_the_build() -> None:
    llm = SimpleNamespace(n_tokens=0, n_batch=512)
    assert row_block(llm) in (4, 512)
    last = list(range(600))
    want = 596 if row_block(llm) == 4 else 512
    assert source(0, last, 700)._reusable(last[:599] + [1]) == want


@pytest.mark.parametrize("align", [4, 512])
def test_a_cut_of_zero_reads_the_whole_prompt(align: int) -> None:
    assert source(align, [1, 2, 3], 3)._reusable([1, 2, 9]) == 0
