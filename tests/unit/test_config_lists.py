"""A list setting given one value on the command line means the list of that value."""

from __future__ import annotations

from engine import config


def test_a_single_value_for_a_list_setting_becomes_a_one_item_list() -> None:
    cfg = config.load(None, ["data.train=/some/folder", "lora.target_modules=q_proj"])
    assert cfg["data"]["train"] == ["/some/folder"]
    assert cfg["lora"]["target_modules"] == ["q_proj"]
    assert config.load(None, ["data.train=['a', 'b']"])["data"]["train"] == ["a", "b"]
    assert config.load(None, ["data.tools=x.json"])["data"]["tools"] == "x.json"  # not a list
