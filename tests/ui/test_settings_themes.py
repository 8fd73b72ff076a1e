"""Settings file (remapped keys, bad values), themes from themes/, persistence, NO_COLOR."""

from __future__ import annotations

from pathlib import Path

from web4tui import settings as user_settings
from web4tui.themes import load_themes
from web4tui.widgets.checklist_tree import ChecklistTree


def write_settings(config_home: Path, text: str) -> Path:
    path = config_home / "web4tui" / "settings.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_setting_has_a_one_line_doc() -> None:
    for name, doc in user_settings.DOCS.items():
        assert doc and "\n" not in doc, name


def test_bad_settings_are_reported_and_defaults_kept(config_home: Path) -> None:
    write_settings(config_home, 'memory_warn_fraction = "high"\nshinyness = 3\n'
                   'poll_interval_s = 1\n')
    s = user_settings.load()
    assert s.memory_warn_fraction == 0.8 and s.poll_interval_s == 1.0
    assert any("memory_warn_fraction" in p for p in s.problems)
    assert any("unknown setting 'shinyness'" in p for p in s.problems)


async def test_remapped_key_runs_the_stage(config_home, runs, make_app, started) -> None:
    write_settings(config_home, '[keys]\nrun_stage = "g"\n')
    app = make_app(runs("failing"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("r")
        await pilot.pause(0.2)
        assert started == []
        await pilot.press("g")
        await pilot.pause(0.3)
        assert started == [(["sanity"], "failing")]


def test_themes_folder_has_dark_light_and_high_contrast() -> None:
    themes = {t.name: t for t in load_themes()}
    assert {"web4-dark", "web4-light", "web4-high-contrast"} <= set(themes)
    assert themes["web4-dark"].dark and not themes["web4-light"].dark


async def test_theme_choice_persists_in_the_settings_file(config_home, runs, make_app) -> None:
    path = write_settings(config_home, '# mine\ntheme = "web4-light"\n\n[keys]\nstop = "S"\n')
    app = make_app(runs("passing"))
    assert app.theme == "web4-light"
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        await pilot.pause(0.1)
        assert app.theme == "web4-dark"
    text = path.read_text()
    assert 'theme = "web4-dark"' in text and "# mine" in text and 'stop = "S"' in text
    assert user_settings.load().theme == "web4-dark"


async def test_theme_change_recolours_the_tree(runs, make_app) -> None:
    app = make_app(runs("passing"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        tree = app.screen.query_one(ChecklistTree)
        dark = tree.node_for("sanity.valid_jsonl").label.style
        app.theme = "web4-light"
        await pilot.pause(0.1)
        light = tree.node_for("sanity.valid_jsonl").label.style
        assert dark != light and str(light) == app.theme_variables["success"]


async def test_no_color_keeps_every_state_readable(monkeypatch, runs, make_app) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(runs("training"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert app.no_color
        tree = app.screen.query_one(ChecklistTree)
        assert str(tree.node_for("mini.tool_json").label).startswith("✗")
        assert str(tree.node_for("mini.style_match").label).startswith("!")
