"""The checklist as a live tree: stages -> items from engine/checklist.py, with states.

Labels are rebuilt only for nodes whose text changed, so a progress tick touches one line.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.widgets import Tree

from engine import checklist
from web4tui.charts import fmt_duration
from web4tui.glyphs import COLOR_VARS, glyph
from web4tui.run_state import RunState


class ChecklistTree(Tree[str]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("checklist", **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self._labels: dict[str, tuple[str, str]] = {}  # id -> (state, text) last drawn
        for stage in checklist.STAGES:
            node = self.root.add("", data=stage.id, expand=True)
            for item in stage.items:
                node.add_leaf("", data=item.id)
        self._by_key = {n.data: n for n in _walk(self.root) if n.data}

    def node_for(self, key: str):  # noqa: ANN201 — a TreeNode
        return self._by_key[key]

    def show(self, state: RunState, cfg: dict[str, Any] | None, *, force: bool = False) -> None:
        now = time.time()
        for stage in checklist.STAGES:
            st = state.stage_state(stage.id)
            self._set(stage.id, st, f"{stage.number}. {stage.title}"
                      + _stage_suffix(state, stage.id, st, now), force)
            for item in stage.items:
                self._set(item.id, state.item_status(item.id),
                          checklist.render(item.title, cfg)
                          + _value(state.checks.get(item.id)), force)

    def _set(self, key: str, state: str, text: str, force: bool) -> None:
        if not force and self._labels.get(key) == (state, text):
            return
        self._labels[key] = (state, text)
        color = self.app.theme_variables.get(COLOR_VARS.get(state, ""), "")
        self._by_key[key].set_label(Text(f"{glyph(state)} {text}", style=color or ""))

    def selected_key(self) -> str | None:
        node = self.cursor_node
        return node.data if node is not None else None


def _walk(node):  # noqa: ANN001, ANN202
    yield node
    for child in node.children:
        yield from _walk(child)


def _value(check: dict[str, Any] | None) -> str:
    if not check or check.get("value") in (None, ""):
        return ""
    return f"  {check['value']}"


def _stage_suffix(state: RunState, stage_id: str, st: str, now: float) -> str:
    p = state.progress.get(stage_id)
    if st == "running" and p:
        # Whole percents and a coarse ETA: the line changes about once a second at most.
        done, total = p.get("done"), p.get("total")
        part = (f"  {int(100 * done / total)}%" if isinstance(done, (int, float)) and total
                else f"  {done}")
        eta = state.stage_eta(stage_id, now)
        return part + (f" ETA {fmt_duration(eta, coarse=True)}" if eta is not None else "")
    items = [state.checks[i.id]["status"] for i in checklist.stage(stage_id).items
             if i.id in state.checks]
    if not items:
        return ""
    counts = [f"{items.count(s)}{glyph(s)}" for s in ("pass", "warn", "fail") if s in items]
    return "  " + " ".join(counts) if counts else ""
