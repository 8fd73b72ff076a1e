"""The user's settings: one TOML file in the XDG config dir, every knob with a one-line doc.

    $XDG_CONFIG_HOME/web4tui/settings.toml   (default ~/.config/web4tui/settings.toml)

Top-level keys are the fields of :class:`Settings`; a ``[keys]`` table remaps bindings by id
(``run_stage = "g"``, see the help screen for ids). A bad value is reported and its default
kept, so a typo never stops the app from opening.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _doc(default: Any, doc: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class Settings:
    theme: str = _doc("web4-dark", "Theme name: web4-dark, web4-light, web4-high-contrast or any Textual theme.")
    poll_interval_s: float = _doc(0.1, "How often the events file is checked for new lines (a cheap stat).")
    liveness_interval_s: float = _doc(1.0, "How often the engine's pid is checked to notice an engine that died.")
    live_redraw_s: float = _doc(0.5, "Fastest redraw of the loss and memory panes while a run streams; readings in between are folded in, not lost.")
    replay_chunk_bytes: int = _doc(4_000_000, "Bytes of history decoded per step on attach, so the screen stays live while replaying.")
    smoothing_span: int = _doc(20, "Span in steps of the exponential moving average drawn as the smoothed loss.")
    trend_window: int = _doc(50, "Steps back the loss trend compares the smoothed loss against.")
    trend_flat_fraction: float = _doc(0.02, "A smoothed-loss change smaller than this fraction reads as flat.")
    loss_history_points: int = _doc(4000, "Loss points kept for the plot; older points are thinned, never the newest.")
    memory_warn_fraction: float = _doc(0.8, "A memory gauge turns to the warning colour at this fraction of the budget.")
    memory_danger_fraction: float = _doc(0.95, "A memory gauge turns to the error colour at this fraction of the budget.")
    samples_per_bucket: int = _doc(3, "Latest generations kept per bucket in the samples pane.")
    log_lines: int = _doc(500, "Lines kept in the log pane (older lines scroll away).")
    eta_window_s: float = _doc(60.0, "Seconds of progress the ETA's moving average looks back over.")
    eta_min_fraction: float = _doc(0.05, "The ETA stays hidden until this fraction of a stage is done.")
    eta_min_seconds: float = _doc(10.0, "The ETA stays hidden until a stage has run this long.")
    log_tail_lines: int = _doc(20, "Lines of engine.log shown when the engine dies.")
    panes: list[str] = _doc(["loss", "memory", "samples", "advice", "log"], "Panes shown at start: loss, memory, samples, advice, log, detail.")
    keys: dict[str, str] = _doc({}, "Key remaps by binding id, e.g. run_stage = \"g\" (the help screen lists ids).")
    problems: list[str] = field(default_factory=list, repr=False, compare=False)


DOCS: dict[str, str] = {f.name: f.metadata["doc"] for f in fields(Settings) if "doc" in f.metadata}


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "web4tui"


def settings_path() -> Path:
    return config_dir() / "settings.toml"


def load(path: Path | None = None) -> Settings:
    """The settings from the file (defaults when it is missing); problems are collected, not raised."""
    path = path or settings_path()
    settings = Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return settings
    except (OSError, ValueError) as exc:
        settings.problems.append(f"{path}: {exc}; using the defaults")
        return settings
    for key, value in data.items():
        if key not in DOCS:
            settings.problems.append(f"{path}: unknown setting {key!r} (known: {', '.join(DOCS)})")
            continue
        default = getattr(settings, key)
        ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))
        if key == "keys":
            ok = ok and all(isinstance(v, str) for v in value.values())
        if not ok or isinstance(value, bool) != isinstance(default, bool):
            settings.problems.append(f"{path}: {key} should be like {default!r}, got {value!r}")
            continue
        setattr(settings, key, type(default)(value) if isinstance(default, float) else value)
    return settings


def save_value(key: str, value: str, path: Path | None = None) -> None:
    """Set one top-level string setting in the file, keeping the user's comments and layout."""
    path = path or settings_path()
    line = f"{key} = {_toml_str(value)}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = "# web4tui settings — see `web4tui` help (?) for every key\n"
    pattern = re.compile(rf"^{re.escape(key)}\s*=.*$", re.MULTILINE)
    if pattern.search(text.split("\n[", 1)[0]):
        head, sep, rest = text.partition("\n[")
        text = pattern.sub(line, head, count=1) + sep + rest
    else:  # top-level keys must come before the first table
        head, sep, rest = text.partition("\n[")
        text = head.rstrip("\n") + "\n" + line + "\n" + (sep + rest if sep else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
