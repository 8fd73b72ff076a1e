"""Targets read as numbers, in the format the measurements use; never as templates."""

from __future__ import annotations

from engine import checklist


def test_no_template_is_left_even_without_a_run_config() -> None:
    for item in checklist.ITEMS.values():
        for text in (item.title, item.target, item.proof):
            for cfg in (None, {}, {"mini": {}}):
                assert "{" not in checklist.render(text, cfg), (item.id, text)


def test_shares_read_as_percentages_and_follow_the_run_config() -> None:
    target = checklist.ITEMS["eval.tool_json_valid"].target
    assert checklist.render(target, None) == ">= 95%"
    assert checklist.render(target, {"eval": {"tool_json_valid": 0.9}}) == ">= 90%"
    assert checklist.render(checklist.ITEMS["mini.tool_json"].title, None) == \
        "10 tool prompts give valid JSON"
