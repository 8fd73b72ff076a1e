"""Iteration advice: symptom -> action -> evidence; it stands out when a target was missed."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from engine import checklist
from web4tui.run_state import RunState


class AdvicePane(Widget):
    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.state: RunState | None = None
        self.border_title = "Advice"

    def show(self, state: RunState) -> None:
        self.state = state
        missed = bool(state.missed_targets())
        self.set_class(missed and bool(state.advice), "-alert")
        self.border_title = ("Advice — a target was missed" if missed and state.advice
                             else "Advice")
        self.refresh(layout=True)

    def render(self) -> Content:
        advice = self.state.advice if self.state else {}
        if not advice:
            return Content.from_markup("[$text-muted]$why[/]",
                                       why=no_advice_reason(self.state) if self.state else "")
        lines = []
        for rule in advice.values():
            lines.append(Content.from_markup(
                "[b]$symptom[/b] → [$accent]$action[/]",
                symptom=str(rule.get("symptom", "")), action=str(rule.get("action", ""))))
            if rule.get("evidence"):
                lines.append(Content.from_markup("  [$text-muted]evidence:[/] $evidence",
                                                 evidence=_evidence(rule["evidence"])))
        return Content("\n").join(lines)


def no_advice_reason(state: RunState) -> str:
    """Why the pane is empty — never "nothing missed" while a stage shows a ✗."""
    missed = state.missed_targets()
    if not missed:
        return "no advice: nothing has missed a target"
    first = checklist.ITEMS.get(missed[0])
    title = f"“{first.title}”" if first else missed[0]
    n = f"{len(missed)} target{'s' if len(missed) != 1 else ''} missed"
    if missed[0].startswith("sanity."):
        return (f"no advice: {n}, first {title} in 1. Sanity check — the data needs fixing "
                "before training can be judged; Enter on the item lists what to fix")
    if state.stage_status.get("advice") in (None, "blocked", "cancelled", "died"):
        return f"no advice yet: {n} (first {title}); 8. Advice reads them when it runs"
    return f"no advice: 8. Advice has no rule for the {n} (first {title})"


def _evidence(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(map(str, value))
    return str(value)
