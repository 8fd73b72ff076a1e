"""Opening the app on any data: the overrides, the header that names them, `e` to change one."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from engine import config
from web4tui.next_run import NextRun
from web4tui.screens.edit_setting import EditSettingScreen


def header(app) -> str:  # noqa: ANN001
    return str(app.screen.query_one("#header").render())


async def test_the_header_names_the_data_model_and_backend_of_the_next_run(make_app) -> None:
    next_run = NextRun(None, ["data.train=/some/folder", "train.backend=torch"])
    next_run.resolve(None)
    app = make_app(None)
    app.next_run = next_run
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.2)
        text = header(app)
        assert "data /some/folder · eval data/eval" in text
        assert "model SmolLM2-135M-Instruct (embedded)" in text and "backend torch" in text


async def test_e_changes_a_setting_for_the_next_run(make_app, started) -> None:
    app = make_app(None)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("e")
        await pilot.pause(0.1)
        assert isinstance(app.screen, EditSettingScreen)
        await pilot.press(*"/my/data", "enter")
        for _ in range(30):
            await pilot.pause(0.1)
            if "/my/data" in header(app):
                break
        assert "data /my/data" in header(app)
        assert app.screen.next_run.sets == ["data.train=/my/data"]
        await pilot.press("r")  # stage 1 is cheap: it starts at once, with the setting
        await pilot.pause(0.3)
        assert started and started[-1][0] == ["sanity"]


async def test_a_bad_setting_is_refused_with_the_engine_s_message(make_app) -> None:
    app = make_app(None)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("e")
        await pilot.pause(0.1)
        app.screen.query_one("Input").value = "lora.rank=3"
        await pilot.press("enter")
        for _ in range(30):
            await pilot.pause(0.1)
            if app._notifications:
                break
        assert "did you mean 'r'" in "\n".join(str(n.message) for n in app._notifications)
        assert app.screen.next_run.sets == []


def test_the_command_line_opens_the_app_only_on_a_valid_config() -> None:
    proc = subprocess.run([sys.executable, "-m", "web4tui", "--set", "lora.rank=2"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "did you mean 'r'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "web4tui", "attach", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert "--set" in proc.stdout and "--config" in proc.stdout


def test_attach_overrides_apply_on_top_of_the_run_s_own_config(runs) -> None:
    run = runs("passing")
    saved = tomllib.loads((run.root / "config.toml").read_text())
    saved["data"]["train"] = ["their/data"]
    (run.root / "config.toml").write_text(config.dumps(saved))
    cfg = NextRun(None, ["lora.r=16"]).resolve(run)
    assert cfg["lora"]["r"] == 16 and cfg["data"]["train"] == ["their/data"]
