"""Every state has a glyph readable without colour, and a theme colour on top of it."""

from __future__ import annotations

from typing import Iterable

GLYPHS = {
    "pending": "·", "running": "▶", "pass": "✓", "warn": "!", "fail": "✗", "skip": "–",
    "cancelled": "■", "died": "☠", "ok": "✓", "failed": "✗", "skipped": "–",
    "blocked": "⊘",
}
#: State -> theme variable (never a literal colour; the theme decides).
COLOR_VARS = {
    "pass": "success", "ok": "success", "warn": "warning", "fail": "error", "failed": "error",
    "died": "error", "running": "accent", "cancelled": "secondary",
    "skip": "text-muted", "skipped": "text-muted", "pending": "text-muted",
    "blocked": "warning",
}
LEGEND = ("· pending   ▶ running   ✓ pass   ! warn   ✗ fail   – skip   ■ cancelled   "
          "⊘ blocked (a stage it needs is not proved)   ☠ engine died")


#: The one word for each state, used by the tree, the detail, the runs list and the CLI.
WORDS = {
    "pending": "not run", "running": "running", "pass": "passed", "warn": "passed with warnings",
    "fail": "failed", "skip": "skipped", "cancelled": "cancelled", "died": "engine died",
    "blocked": "blocked",
}
ITEM_WORDS = {**WORDS, "warn": "warning"}  # an item warns; a stage passes with warnings


def word(state: str, *, item: bool = False) -> str:
    return (ITEM_WORDS if item else WORDS).get(state, state)


def stage_state(status: str | None, items: Iterable[str]) -> str:
    """A stage's state from its finish status and its items' statuses so far."""
    if status in ("running", "cancelled", "died", "blocked"):
        return status
    items = list(items)
    if status == "failed" or "fail" in items:
        return "fail"
    if status == "skipped" or (items and all(s == "skip" for s in items)):
        return "skip"
    if "warn" in items:
        return "warn"
    if status == "ok":
        return "pass"
    return "pending"


def glyph(state: str) -> str:
    return GLYPHS.get(state, "?")


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
    word = str(verdict).lower().replace("-", "_").replace(" ", "_")
    if word.startswith(("not_", "no_")) or any(
            bad in word for bad in ("invalid", "fail", "bad", "wrong", "prose", "drift")):
        return "fail"
    if word.startswith(("pass", "ok", "valid", "match", "refused", "answered", "correct")):
        return "pass"
    return "warn"


def _escape(text: str) -> str:
    return text.replace("[", r"\[")
