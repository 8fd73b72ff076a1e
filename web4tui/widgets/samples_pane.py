"""The latest generations per bucket with their verdict (valid JSON? refusal? style?)."""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from web4tui.glyphs import COLOR_VARS, glyph, verdict_state
from web4tui.run_state import RunState


class SamplesPane(Widget):
    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.state: RunState | None = None
        self.border_title = "Samples"

    def show(self, state: RunState) -> None:
        self.state = state
        self.refresh()

    def render(self) -> Content:
        samples = self.state.samples if self.state else {}
        if not samples:
            return Content.from_markup("[$text-muted]no samples yet (training "
                                       "stages)[/]")
        width, height = self.content_size.width, self.content_size.height
        per_bucket = max(1, height // max(1, len(samples)))
        lines: list[Content] = []
        for bucket in sorted(samples):
            for s in list(samples[bucket])[::-1][:per_bucket]:
                st = verdict_state(s.get("verdict"))
                head = Content.from_markup(
                    f"[${COLOR_VARS[st]}]{glyph(st)} $bucket[/] ",
                    bucket=f"{bucket:<9}")
                verdict = s.get("verdict")
                verdict = verdict.get("label", verdict) if isinstance(verdict, dict) else verdict
                body = Content(f"{verdict} s{s.get('step')}: " + _one_line(s.get("output")))
                lines.append((head + body).truncate(width, ellipsis=True))
        return Content("\n").join(lines)


def _one_line(text: object) -> str:
    return " ".join(str(text or "").split())
