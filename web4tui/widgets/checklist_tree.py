"""The checklist as a live tree: one row per stage, the stage in focus opened to its items.

Every stage row carries its progress and pass/fail counts, so the whole checklist fits a
small terminal; only one stage is open at a time — the one the cursor is on, or, until the
user moves, the running or first failing one. Labels are ellipsised to the pane's width and
rebuilt only when their text changed, so a progress tick touches one line.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.widgets import Tree

from engine import checklist
from web4tui.charts import fmt_duration
from web4tui.glyphs import COLOR_VARS, glyph, word
from web4tui.run_state import RunState

#: Stage states that pull the cursor to their stage while the user has not moved it.
ATTENTION = ("running", "fail", "blocked", "died", "cancelled")
PREFIX = 2  # the open/closed icon or the guide before every label


class ChecklistTree(Tree[str]):
    ICON_NODE = "▸ "  # not ▶: that glyph means "running"
    ICON_NODE_EXPANDED = "▾ "

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("checklist", **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self.auto_expand = False  # Enter opens the drill-in view instead
        self._labels: dict[str, tuple[str, str, int]] = {}  # id -> (state, text, width) drawn
        self._texts: dict[str, tuple[str, str]] = {}  # id -> (state, text) last computed
        for stage in checklist.STAGES:
            node = self.root.add("", data=stage.id, expand=False)
            for item in stage.items:
                node.add_leaf("", data=item.id)
        self._by_key = {n.data: n for n in _walk(self.root) if n.data}
        self.user_moved = False  # once the user moves, the cursor is theirs

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
        if not self.user_moved:
            self.follow(state)

    def follow(self, state: RunState) -> None:
        """Put the cursor on the stage that needs attention (running, then first failing)."""
        states = {s: state.stage_state(s) for s in checklist.STAGE_IDS}
        target = next((s for s in checklist.STAGE_IDS if states[s] == "running"), None) or \
            next((s for s in checklist.STAGE_IDS if states[s] in ATTENTION), None)
        current = self.selected_key()
        if target is None:
            target = (current or checklist.STAGE_IDS[0]).split(".")[0]
        self.open_stage(target)
        if current is None or current.split(".")[0] != target:
            self._tree_lines  # noqa: B018 — lay the lines out now, so the node knows its line
            self.move_cursor(self.node_for(target))

    def open_stage(self, stage_id: str) -> None:
        """Open one stage, close the others (the cursor stays on its node)."""
        for stage in checklist.STAGES:
            node = self._by_key[stage.id]
            if stage.id == stage_id and not node.is_expanded:
                node.expand()
            elif stage.id != stage_id and node.is_expanded:
                node.collapse()

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if event.node.data:
            self.open_stage(str(event.node.data).split(".")[0])

    # The user's own moves: from then on the cursor is theirs, never pulled away.
    def action_cursor_up(self) -> None:
        self.user_moved = True
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self.user_moved = True
        super().action_cursor_down()

    def action_scroll_home(self) -> None:
        self.user_moved = True
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self.user_moved = True
        super().action_scroll_end()

    async def _on_click(self, event) -> None:  # noqa: ANN001
        self.user_moved = True
        await super()._on_click(event)

    def _set(self, key: str, state: str, text: str, force: bool) -> None:
        self._texts[key] = (state, text)
        width = self._label_width()
        if not force and self._labels.get(key) == (state, text, width):
            return
        self._labels[key] = (state, text, width)
        color = self.app.theme_variables.get(COLOR_VARS.get(state, ""), "")
        label = Text(f"{glyph(state)} {text}", style=color or "")
        if width > 0 and label.cell_len > width:
            label.truncate(width, overflow="ellipsis")
        self._by_key[key].set_label(label)

    def _label_width(self) -> int:
        width = self.scrollable_content_region.width
        return max(0, width - PREFIX) if width else 0

    def on_resize(self) -> None:
        for key, (state, text) in list(self._texts.items()):
            self._set(key, state, text, False)

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
    items = [state.checks[i.id]["status"] for i in checklist.stage(stage_id).items
             if i.id in state.checks]
    counts = " ".join(f"{items.count(s)}{glyph(s)}" for s in ("pass", "warn", "fail", "skip")
                      if s in items)
    total = len(checklist.stage(stage_id).items)
    p = state.progress.get(stage_id)
    if st == "running":
        part = f"  {len(items)}/{total}"
        if p:
            # Whole percents and a coarse ETA: the line changes about once a second at most.
            done, of = p.get("done"), p.get("total")
            if isinstance(done, (int, float)) and isinstance(of, (int, float)) and of:
                part += f" {int(100 * done / of)}%"
            eta = state.stage_eta(stage_id, now)
            if eta is not None:
                part += f" ETA {fmt_duration(eta, coarse=True)}"
        return part + (f"  {counts}" if counts else "")
    if st in ("blocked", "cancelled", "died"):
        return f"  {word(st)}" + (f"  {counts}" if counts else "")
    return f"  {counts}" if counts else ""
