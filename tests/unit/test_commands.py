"""web4tui hands the engine's commands on as typed; the engine reads those words the same way."""

from __future__ import annotations

import pytest

from engine import commands

HANDED_ON = [
    ["check", "data/", "--json", "--set", "sanity.max_listed=3", "--config", "c.toml"],
    ["evaluate", "e.jsonl", "--run", "r1", "--gguf", "m.gguf", "--server", "auto", "--out", "o",
     "--json", "--set", "eval.max_per_bucket=2"],
    ["export", "--model", "m/", "--quant", "q8_0", "--out", "x", "--set", "a.b=1"],
    ["deploy", "--gguf", "m.gguf", "--name", "web4", "--out", "d", "--config", "c.toml"],
]


def _options(parser: object, name: str) -> set[str]:
    sub = next(a for a in parser._actions if a.dest == "cmd").choices[name]  # type: ignore[attr-defined]
    return {s for a in sub._actions for s in a.option_strings}


@pytest.mark.parametrize("argv", HANDED_ON, ids=lambda a: a[0])
def test_the_engine_reads_the_words_web4tui_hands_on_the_same_way(argv: list[str]) -> None:
    mine = commands.web4tui_parser().parse_args(argv)
    assert mine.words == argv[1:]  # exactly as typed, nothing re-encoded
    engine = commands.engine_parser().parse_args([mine.cmd, *mine.words])
    shared = vars(engine).keys() - {"words"}
    assert {k: getattr(mine, k) for k in shared} == {k: getattr(engine, k) for k in shared}


@pytest.mark.parametrize("name", ["check", "evaluate", "export", "deploy"])
def test_both_command_lines_take_the_same_options(name: str) -> None:
    assert _options(commands.web4tui_parser(), name) == \
        _options(commands.engine_parser(), name)


def test_every_command_that_looks_for_runs_takes_the_outputs_setting() -> None:
    parser = commands.web4tui_parser()
    for argv in (["runs"], ["stop"], ["attach"], ["run"], ["export", "r1"], ["deploy", "r1"]):
        args = parser.parse_args([*argv, "--set", "run.outputs_dir=/x"])
        assert "run.outputs_dir=/x" in (getattr(args, "sets", None) or args.app_sets), argv
