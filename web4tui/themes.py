"""Themes as data: every ``themes/*.toml`` becomes a Textual :class:`Theme`.

Colours live only in these files; stylesheets and widgets name ``$success``, ``$warning``…
so a theme change recolours everything and NO_COLOR / 16-colour terminals degrade evenly.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from textual.theme import Theme

THEMES_DIR = Path(__file__).resolve().parent.parent / "themes"
_THEME_FIELDS = {f.name for f in fields(Theme)}


def load_themes(folder: Path = THEMES_DIR) -> list[Theme]:
    """The themes in ``folder``, sorted by name; a file with unknown keys is skipped."""
    themes = []
    for path in sorted(folder.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            if not set(data) <= _THEME_FIELDS:
                continue
            themes.append(Theme(**data))
        except (OSError, ValueError, TypeError):
            continue
    return themes


def theme_color(app, name: str, fallback: str = "") -> str:  # noqa: ANN001 — any App
    """A theme variable's colour (for Rich text that cannot say ``$name`` itself)."""
    return app.theme_variables.get(name, fallback)
