"""Paths in the config work from any folder: a config file's from its own folder, the shipped
defaults' from the project, --set's from where the command runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory is an empty folder far from the project."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_shipped_defaults_point_into_the_project_from_any_folder(elsewhere: Path) -> None:
    cfg = config.load()
    assert cfg["data"]["train"] == [str(ROOT / "data" / "train")]
    assert cfg["data"]["eval"] == [str(ROOT / "data" / "eval")]
    assert Path(cfg["data"]["tools"]).is_file() and Path(cfg["eval"]["ruff_config"]).is_file()
    # the runs folder stays where the command runs; "" and names are not paths
    assert cfg["run"]["outputs_dir"] == "outputs"
    assert cfg["model"]["id"] == "default" and cfg["export"]["convert_script"] == ""


def test_a_config_file_s_relative_paths_are_taken_from_its_folder(tmp_path: Path,
                                                                 elsewhere: Path) -> None:
    folder = tmp_path / "project"
    (folder / "base").mkdir(parents=True)
    (folder / "c.toml").write_text(
        '[data]\ntrain = ["records", "/abs/records"]\ntools = ""\n'
        '[model]\nid = "base"\n[run]\noutputs_dir = "runs"\n'
        '[eval]\nruff_config = "~/house.toml"\n')
    cfg = config.load(folder / "c.toml", ["data.eval=held-out", "model.cache_dir=cache"])
    assert cfg["data"]["train"] == [str(folder / "records"), "/abs/records"]
    assert cfg["data"]["tools"] == ""  # "" means none, not the config's folder
    assert cfg["model"]["id"] == str(folder / "base")  # a folder that exists there
    assert cfg["run"]["outputs_dir"] == str(folder / "runs")
    assert cfg["eval"]["ruff_config"] == str(Path.home() / "house.toml")
    # --set is typed where the command runs: it stays relative to the working directory
    assert cfg["data"]["eval"] == ["held-out"] and cfg["model"]["cache_dir"] == "cache"
    hub = folder / "hub.toml"
    hub.write_text('[model]\nid = "Qwen/Qwen2.5-Coder-0.5B-Instruct"\n')
    assert config.load(hub)["model"]["id"] == "Qwen/Qwen2.5-Coder-0.5B-Instruct"


def test_a_run_s_resolved_config_is_read_as_written(tmp_path: Path, elsewhere: Path) -> None:
    cfg = config.load(None, ["data.train=mine"])
    saved = tmp_path / "run" / "config.toml"
    saved.parent.mkdir()
    saved.write_text(config.dumps(cfg))
    again = config.load(saved)
    assert again == cfg and again["data"]["train"] == ["mine"]  # not run/mine
