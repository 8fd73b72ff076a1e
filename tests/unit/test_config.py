from __future__ import annotations

from pathlib import Path

import pytest

from engine import config
from engine.config import ConfigError


def test_defaults_are_valid_and_every_setting_is_documented() -> None:
    config.validate(config.defaults())
    for s in config.settings():
        assert s.doc, f"{s.path} has no description line in defaults.toml"


def test_seed_numbers_are_settings() -> None:
    d = config.defaults()
    assert d["sanity"]["max_avg_tokens"] == 2048
    assert (d["sanity"]["expected_records_min"], d["sanity"]["expected_records_max"]) == (25000, 40000)
    assert (d["lora"]["r"], d["lora"]["alpha"], d["lora"]["dropout"]) == (8, 16, 0.05)
    # The dry run holds a prompt that lists the tools (~500 tokens): 1024 rather than 512.
    assert d["dry_run"]["seq_len"] == 1024 and d["full"]["seq_len"] == 2048
    assert d["eval"]["guardrail_accuracy"] == 0.98


def test_set_overrides_and_types() -> None:
    cfg = config.load(None, ["lora.r=16", "train.learning_rate=1", "model.id=Qwen/Qwen2.5-Coder-7B",
                             "lora.target_modules=['q_proj']"])
    assert cfg["lora"]["r"] == 16
    assert cfg["train"]["learning_rate"] == 1.0 and isinstance(cfg["train"]["learning_rate"], float)
    assert cfg["model"]["id"] == "Qwen/Qwen2.5-Coder-7B"
    assert cfg["lora"]["target_modules"] == ["q_proj"]


def test_unknown_key_is_named_with_a_suggestion_and_allowed_keys() -> None:
    with pytest.raises(ConfigError) as err:
        config.load(None, ["lora.rank=16"])
    msg = str(err.value)
    assert "'rank'" in msg and "did you mean 'r'" in msg and "alpha" in msg


def test_unknown_section_is_named() -> None:
    with pytest.raises(ConfigError, match="'trainer'"):
        config.load(None, ["trainer.lr=1"])


def test_wrong_type_names_key_and_type() -> None:
    with pytest.raises(ConfigError, match=r"lora\.r must be of type integer"):
        config.load(None, ["lora.r=eight"])


def test_enum_lists_allowed_values() -> None:
    with pytest.raises(ConfigError, match="Allowed values: auto, torch, mlx"):
        config.load(None, ["train.backend=jax"])


def test_lower_bound() -> None:
    with pytest.raises(ConfigError, match="lora.r"):
        config.load(None, ["lora.r=0"])


def test_config_file_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "c.toml"
    good.write_text("[lora]\nr = 32\n")
    assert config.load(good)["lora"]["r"] == 32
    bad = tmp_path / "bad.toml"
    bad.write_text("[lora\nr = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "missing.toml")


def test_malformed_set() -> None:
    with pytest.raises(ConfigError, match="section.key=value"):
        config.load(None, ["lora.r"])
    with pytest.raises(ConfigError, match="section.key"):
        config.load(None, ["r=3"])


def test_dumps_round_trips_with_docs() -> None:
    import tomllib
    cfg = config.load(None, ["lora.r=4"])
    text = config.dumps(cfg)
    assert "# LoRA rank." in text
    assert tomllib.loads(text) == cfg
