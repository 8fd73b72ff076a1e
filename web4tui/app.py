"""The web4tui app: the checklist as a live tree beside the selected item and the engine log.

The app starts engines (detached, via :mod:`web4tui.engine_client`) and follows their
``events.jsonl`` with :class:`web4tui.follow.Follower`; it never talks to an engine any other
way, so quitting or losing SSH leaves the run going, and attaching later replays it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, RichLog, Static, Tree
from textual.widgets.tree import TreeNode

from engine import checklist
from engine.protocol import Event
from web4tui import engine_client
from web4tui.follow import Follower
from web4tui.runfolder import RunFolder

#: Readable without colour: every state has its own glyph.
GLYPHS = {"pending": "·", "running": "▶", "pass": "✓", "warn": "!", "fail": "✗", "skip": "–",
          "ok": "✓", "failed": "✗", "cancelled": "■", "skipped": "–"}
STYLES = {"pass": "green", "ok": "green", "warn": "yellow", "fail": "red", "failed": "red",
          "running": "cyan", "cancelled": "magenta", "skip": "dim", "skipped": "dim",
          "pending": ""}


class Web4App(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "web4tui"
    BINDINGS = [
        Binding("r", "run_selected", "Run stage", id="run_stage"),
        Binding("a", "run_all", "Run all", id="run_all"),
        Binding("s", "stop", "Stop", id="stop"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, run: RunFolder | None = None) -> None:
        super().__init__()
        self.run_folder = run
        self.follower: Follower | None = Follower(run) if run else None
        self.items: dict[str, dict[str, Any]] = {}
        self.stage_status: dict[str, str] = {}
        self.nodes: dict[str, TreeNode[str]] = {}
        self.hello: dict[str, Any] = {}
        self.progress: dict[str, str] = {}
        self.started_at: float | None = None
        self.last_ts = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            tree: Tree[str] = Tree("checklist", id="checklist")
            tree.show_root = False
            yield tree
            with Vertical(id="right"):
                yield Static("", id="detail")
                yield RichLog(id="log", wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        tree = self.query_one("#checklist", Tree)
        for stage in checklist.STAGES:
            node = tree.root.add("", data=stage.id, expand=True)
            self.nodes[stage.id] = node
            for item in stage.items:
                self.nodes[item.id] = node.add_leaf("", data=item.id)
        self._redraw_tree()
        tree.focus()
        self._update_subtitle()
        self.set_interval(0.25, self._poll)

    # -- following the engine -------------------------------------------------------------
    def _poll(self) -> None:
        if self.follower is None:
            return
        events = self.follower.poll()
        for ev in events:
            self._apply(ev)
        if events:
            self._redraw_tree()
            self._show_detail()
        if self.follower.engine_died() and not getattr(self, "_death_reported", False):
            self._death_reported = True
            log = self.query_one("#log", RichLog)
            log.write("engine stopped without finishing its stage; engine.log ends with:")
            log.write(self.follower.run.log_tail())
        self._update_subtitle()

    def _apply(self, ev: Event) -> None:
        log = self.query_one("#log", RichLog)
        self.last_ts = ev.ts
        if ev.type == "hello":
            self.hello = ev.payload
            self.started_at = ev.ts
        elif ev.type == "stage_started" and ev.stage:
            self.stage_status[ev.stage] = "running"
        elif ev.type == "stage_finished" and ev.stage:
            self.stage_status[ev.stage] = ev.get("status", "")
            self.progress.pop(ev.stage, None)
            log.write(f"[{ev.stage}] finished {ev.get('status')} in {ev.get('duration_s')} s")
        elif ev.type == "progress" and ev.stage:
            eta = ev.get("eta_s")
            self.progress[ev.stage] = (f"{ev.get('done')}/{ev.get('total')} {ev.get('unit')}"
                                       + (f" ETA {eta:.0f}s" if isinstance(eta, (int, float))
                                          else ""))
        elif ev.type == "check":
            self.items[ev.get("item")] = ev.payload
        elif ev.type in ("log", "error"):
            msg = ev.get("message")
            log.write(f"[{ev.stage or 'engine'}] {ev.get('level', 'error')}: {msg}")
            if ev.type == "error" and ev.get("hint"):
                log.write(f"    hint: {ev.get('hint')}")

    # -- drawing --------------------------------------------------------------------------
    def _cfg(self) -> dict[str, Any] | None:
        if self.run_folder is None:
            return None
        try:
            import tomllib
            return tomllib.loads((self.run_folder.root / "config.toml").read_text())
        except (OSError, ValueError):
            return None

    def _redraw_tree(self) -> None:
        cfg = self._cfg()
        for stage in checklist.STAGES:
            status = self.stage_status.get(stage.id, "pending")
            extra = f"  {self.progress[stage.id]}" if stage.id in self.progress else ""
            self.nodes[stage.id].set_label(_label(
                status, f"{stage.number}. {stage.title}{extra}"))
            for item in stage.items:
                check = self.items.get(item.id)
                st = check["status"] if check else (
                    "running" if status == "running" else "pending")
                value = f" — {check['value']}" if check and check.get("value") else ""
                self.nodes[item.id].set_label(_label(
                    st, checklist.render(item.title, cfg) + value))

    def _show_detail(self) -> None:
        tree = self.query_one("#checklist", Tree)
        node = tree.cursor_node
        detail = self.query_one("#detail", Static)
        if node is None or node.data is None:
            return
        key = node.data
        cfg = self._cfg()
        if key in checklist.ITEMS:
            item = checklist.ITEMS[key]
            check = self.items.get(key)
            lines = [checklist.render(item.title, cfg),
                     f"target: {checklist.render(item.target, cfg)}",
                     f"how: {checklist.render(item.proof, cfg)}"]
            if check:
                lines.append(f"status: {check['status']}   value: {check.get('value')}")
                lines.append(_short(check.get("detail")))
            detail.update("\n".join(lines))
        else:
            stage = checklist.stage(key)
            detail.update(f"{stage.number}. {stage.title}\n{stage.summary}\n"
                          f"status: {self.stage_status.get(key, 'pending')}")

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        self._show_detail()

    def _update_subtitle(self) -> None:
        parts = [f"run {self.run_folder.name}" if self.run_folder else "no run yet"]
        if self.hello:
            parts.append(f"{self.hello.get('backend')}/{self.hello.get('device')}")
        running = [s for s, st in self.stage_status.items() if st == "running"]
        if running:
            parts.append(f"stage {running[0]}")
        if self.started_at:
            end = time.time() if running else self.last_ts
            parts.append(f"elapsed {int(max(0.0, end - self.started_at))}s")
        self.sub_title = " · ".join(parts)

    # -- actions --------------------------------------------------------------------------
    def _selected_stage(self) -> str:
        node = self.query_one("#checklist", Tree).cursor_node
        key = node.data if node is not None and node.data else checklist.STAGE_IDS[0]
        return key.split(".")[0]

    def action_run_selected(self) -> None:
        self._start([self._selected_stage()])

    def action_run_all(self) -> None:
        self._start(list(checklist.STAGE_IDS))

    def _start(self, stages: list[str]) -> None:
        if self.run_folder and self.run_folder.pid():
            self.notify("an engine is already working on this run", severity="warning")
            return
        name = self.run_folder.name if self.run_folder else None
        try:
            started = engine_client.start(stages, run=name)
        except engine_client.EngineError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        if self.run_folder is None or self.run_folder.root != started.path:
            self.run_folder = RunFolder(started.path)
            self.follower = Follower(self.run_folder)
        self.notify(f"engine pid {started.pid} started on run {started.run}")

    def action_stop(self) -> None:
        if self.run_folder is None or self.run_folder.stop() is None:
            self.notify("no engine is running", severity="warning")
        else:
            self.notify("asked the engine to stop after its current step")

    def action_quit(self) -> None:
        if self.run_folder is not None and self.run_folder.pid() is not None:
            print(f"the engine keeps working on {self.run_folder.name}; "
                  f"`web4tui attach {self.run_folder.name}` to come back")
        self.exit()


def _label(status: str, text: str) -> str:
    from rich.text import Text

    glyph = GLYPHS.get(status, "?")
    return Text(f"{glyph} {text}", style=STYLES.get(status, ""))  # type: ignore[return-value]


def _short(detail: Any, limit: int = 1200) -> str:
    if detail is None:
        return ""
    text = detail if isinstance(detail, str) else json.dumps(detail, indent=1, ensure_ascii=False,
                                                             default=str)
    return text if len(text) <= limit else text[:limit] + " …"
