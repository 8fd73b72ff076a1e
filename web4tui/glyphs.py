"""Every state has a glyph readable without colour, and a theme colour on top of it.

The glyphs and words are the commands' own (:mod:`engine.event_text`), so a state looks the
same in the app and in a terminal; the colours are the app's.
"""

from __future__ import annotations

from engine.event_text import GLYPHS, ITEM_WORDS, WORDS, glyph, stage_state, word  # noqa: F401

#: State -> theme variable (never a literal colour; the theme decides).
COLOR_VARS = {
    "pass": "success", "ok": "success", "warn": "warning", "fail": "error", "failed": "error",
    "died": "error", "running": "accent", "cancelled": "secondary",
    "skip": "text-muted", "skipped": "text-muted", "pending": "text-muted",
    "blocked": "warning",
}
LEGEND = ("· pending   ▶ running   ✓ pass   ! warn   ✗ fail   - skip   ■ cancelled   "
          "⊘ blocked (a stage it needs is not proved)   ☠ engine died")


def markup(state: str, text: str) -> str:
    """Content markup: ``[$success]✓ text[/]``, resolved against the current theme."""
    var = COLOR_VARS.get(state)
    body = f"{glyph(state)} {text}"
    return f"[${var}]{_escape(body)}[/]" if var else _escape(body)


def verdict_state(verdict: object) -> str:
    """A sample's verdict as a check state: pass, fail or warn (unknown words are warn)."""
    if isinstance(verdict, dict):
        ok = verdict.get("ok")
        return "pass" if ok is True else "fail" if ok is False else "warn"
    if isinstance(verdict, bool):
        return "pass" if verdict else "fail"
    said = str(verdict).lower().replace("-", "_").replace(" ", "_")
    if said.startswith(("not_", "no_")) or any(
            bad in said for bad in ("invalid", "fail", "bad", "wrong", "prose", "drift")):
        return "fail"
    if said.startswith(("pass", "ok", "valid", "match", "refused", "answered", "correct")):
        return "pass"
    return "warn"


def _escape(text: str) -> str:
    return text.replace("[", r"\[")
