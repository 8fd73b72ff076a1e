"""What the selected checklist line means: its wording, target, measurement and evidence."""

from __future__ import annotations

import json
from typing import Any

from textual.content import Content
from textual.widgets import Static

from engine import checklist
from web4tui.charts import fmt_duration
from web4tui.glyphs import markup, word
from web4tui.run_state import RunState

EVIDENCE_CHARS = 1500  # enough to read, short enough to never stall a redraw


class DetailPane(Static):
    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__("", **kwargs)
        self.border_title = "Detail"
        self._last: Content | None = None

    def show(self, key: str | None, state: RunState, cfg: dict[str, Any] | None) -> None:
        if key is None:
            return
        content = (_item(key, state, cfg) if key in checklist.ITEMS
                   else _stage(key, state))
        if content != self._last:  # same text: no repaint
            self._last = content
            self.update(content)


def _item(key: str, state: RunState, cfg: dict[str, Any] | None) -> Content:
    item = checklist.ITEMS[key]
    status = state.item_status(key)
    check = state.checks.get(key) or {}
    lines = [markup(status, f"{checklist.render(item.title, cfg)} — {word(status, item=True)}"),
             f"[b]target[/b]   {_esc(checklist.render(item.target, cfg))}"]
    if check.get("value") not in (None, ""):
        lines.append(f"[b]measured[/b] {_esc(check.get('value'))}")
    engine_target = check.get("target")
    if engine_target and engine_target != checklist.render(item.target, cfg):
        lines.append(f"[b]engine target[/b] {_esc(engine_target)}")
    lines.append(f"[b]how[/b]      {_esc(checklist.render(item.proof, cfg))}")
    lines.append(f"[$text-muted]seed: {_esc(item.title)}[/]")
    if check.get("detail") not in (None, "", {}):
        lines.append(f"[b]evidence[/b]\n{_esc(_evidence(check['detail']))}")
    return Content.from_markup("\n".join(lines))


def _stage(key: str, state: RunState) -> Content:
    stage = checklist.stage(key)
    st = state.stage_state(key)
    lines = [markup(st, f"{stage.number}. {stage.title} — {word(st)}")]
    block = state.block(key) if st == "blocked" else None
    if block:  # right under the title: a small terminal shows only the first lines
        lines.append(f"[$warning]{_esc(block.get('reason', ''))}; r offers to run "
                     f"{_esc(block.get('run_first', 'it'))} first[/]")
    lines.append(_esc(stage.summary))
    if key in state.stage_duration:
        lines.append(f"took {fmt_duration(state.stage_duration[key])}")
    items = [state.item_status(i.id) for i in stage.items]
    lines.append("items: " + ", ".join(f"{items.count(s)} {word(s, item=True)}" for s in
                                       ("pass", "warn", "fail", "skip", "pending") if s in items))
    return Content.from_markup("\n".join(lines))


def _evidence(detail: Any) -> str:
    text = detail if isinstance(detail, str) else json.dumps(
        detail, indent=1, ensure_ascii=False, default=str)
    return text if len(text) <= EVIDENCE_CHARS else text[:EVIDENCE_CHARS] + " …"


def _esc(value: Any) -> str:
    return str(value).replace("[", r"\[")
