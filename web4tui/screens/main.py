"""The main screen: the checklist tree and item detail on the left, the panes on the right.

It follows one run folder. Each poll tick reads what is new in events.jsonl (a stat when
nothing is), folds the batch into :class:`RunState` and redraws only the panes that changed.
Engine control (run, stop, resume, re-run) goes through the run folder and
:mod:`web4tui.engine_client`; the engine is never a child we wait on.
"""

from __future__ import annotations

import json

import time
import tomllib
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from engine import checklist
from web4tui import drill, engine_client, estimate
from web4tui.bindings import MAIN_COMMANDS, bindings
from web4tui.follow import Follower
from web4tui.next_run import NextRun, describe
from web4tui.run_state import RunState
from web4tui.runfolder import RunFolder
from web4tui.screens.confirm import ConfirmScreen
from web4tui.screens.edit_setting import EditSettingScreen
from web4tui.screens.plot import PlotScreen
from web4tui.screens.result import ResultScreen
from web4tui.settings import Settings
from web4tui.widgets.advice_pane import AdvicePane
from web4tui.widgets.checklist_tree import ChecklistTree
from web4tui.widgets.detail_pane import DetailPane
from web4tui.widgets.log_pane import LogPane
from web4tui.widgets.loss_pane import LossPane
from web4tui.widgets.memory_pane import MemoryPane
from web4tui.widgets.run_header import RunHeader
from web4tui.widgets.samples_pane import SamplesPane

LIVE_PARTS = {"loss", "memory"}
PANES = ("loss", "memory", "samples", "advice", "log", "detail")
DEFAULTS_TOML = Path(checklist.__file__).with_name("defaults.toml")  # read as data, not imported


class MainScreen(Screen[None]):
    BINDINGS = bindings(MAIN_COMMANDS)

    def __init__(self, run: RunFolder | None, settings: Settings,
                 next_run: NextRun | None = None) -> None:
        super().__init__()
        self.run = run
        self.settings = settings
        self.next_run = next_run or NextRun()
        self.follower = Follower(run) if run else None
        self.state = self._new_state()
        self.engine_alive = bool(run and run.pid())
        self.cfg = self.next_run.cfg or _read_cfg(run)  # what the tree's targets are read from
        self.starting = False
        self._held: set[str] = set()  # high-rate parts waiting for their next redraw
        self._last_live_redraw = 0.0

    def _new_state(self) -> RunState:
        s = self.settings
        return RunState(smoothing_span=s.smoothing_span, history_points=s.loss_history_points,
                        samples_per_bucket=s.samples_per_bucket, log_lines=s.log_lines,
                        eta_window_s=s.eta_window_s, eta_min_fraction=s.eta_min_fraction,
                        eta_min_seconds=s.eta_min_seconds)

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield ChecklistTree(id="checklist")
                yield DetailPane(id="detail")
            with Vertical(id="right"):
                yield LossPane(self.settings, id="loss")
                yield MemoryPane(self.settings, id="memory")
                yield SamplesPane(id="samples")
                yield AdvicePane(id="advice")
                yield LogPane(self.settings.log_lines, id="log")
        yield Footer()

    def on_mount(self) -> None:
        for pane in PANES:
            self.query_one(f"#{pane}").display = pane in self.settings.panes or pane == "detail"
        tree = self.query_one(ChecklistTree)
        tree.show(self.state, self.cfg, force=True)
        tree.cursor_line = 0
        tree.focus()
        self._redraw({"header", "loss", "memory", "samples", "advice", "log"})
        # Fast polling only while an engine can write; a finished run is checked once a second.
        self._fast_poll = self.set_interval(self.settings.poll_interval_s, self.poll,
                                            pause=not self.engine_alive)
        self.set_interval(self.settings.liveness_interval_s, self.check_engine)
        self.poll()

    # -- following ------------------------------------------------------------------------
    def poll(self) -> None:
        if self.follower is None:
            return
        events = self.follower.poll(self.settings.replay_chunk_bytes)
        dirty = self.state.apply(events) if events else set()
        # Loss and memory readings stream many times a second; draw them at a calmer pace.
        self._held |= dirty & LIVE_PARTS
        now = time.monotonic()
        if self._held and now - self._last_live_redraw >= self.settings.live_redraw_s:
            dirty |= self._held
            self._held = set()
            self._last_live_redraw = now
        if dirty:
            self._redraw(dirty - self._held)
        if self.follower.pending():  # replaying a long history: next chunk after this frame
            self.call_after_refresh(self.poll)

    def _redraw(self, dirty: set[str]) -> None:
        if "tree" in dirty:
            self.query_one(ChecklistTree).show(self.state, self.cfg)
            self.show_detail()
        if "header" in dirty:
            self.query_one(RunHeader).show(self.run and self.run.name, self.state,
                                           self.engine_alive, describe(self.next_cfg()),
                                           self.next_run.overridden)
        for part, pane in (("loss", LossPane), ("memory", MemoryPane),
                           ("samples", SamplesPane), ("log", LogPane)):
            if part in dirty:
                self.query_one(pane).show(self.state)
        if "advice" in dirty:
            advice = self.query_one(AdvicePane)
            advice.show(self.state)
            if advice.has_class("-alert"):
                advice.display = True  # a missed target with advice is never hidden

    def check_engine(self) -> None:
        """Once a second: is the engine alive? Did it die with a stage unfinished?"""
        alive = bool(self.run and self.run.pid())
        self.engine_alive = alive
        if alive or self.starting:
            self._fast_poll.resume()
        else:
            self._fast_poll.pause()
            self.poll()
        dirty = {"header"}
        if alive:
            dirty.add("tree")  # ETAs count down
        elif self.follower and "running" in self.state.stage_status.values():
            self.poll()  # its last words may have landed after the previous tick
            if "running" in self.state.stage_status.values():
                dirty |= self.state.mark_engine_died(self.run.log_tail(
                    self.settings.log_tail_lines))
                dirty.add("log")
                self.notify("the engine died before finishing its stage — the log pane "
                            "shows the end of engine.log", severity="error", timeout=10)
        self._redraw(dirty)

    def show_detail(self) -> None:
        self.query_one(DetailPane).show(self.query_one(ChecklistTree).selected_key(),
                                        self.state, self.cfg)

    def on_tree_node_highlighted(self, event: ChecklistTree.NodeHighlighted) -> None:
        self.show_detail()

    def on_tree_node_selected(self, event: ChecklistTree.NodeSelected) -> None:
        """Enter on an item or a stage: everything the engine said about it."""
        key = event.node.data
        if key:
            self.action_open_result(str(key))

    def action_open_result(self, key: str | None = None) -> None:
        key = key or self.query_one(ChecklistTree).selected_key()
        if not key:
            return
        title = (checklist.render(checklist.ITEMS[key].title, self.cfg) if key in checklist.ITEMS
                 else f"{checklist.stage(key).number}. {checklist.stage(key).title}")
        self.app.push_screen(ResultScreen(
            title, lambda: drill.lines_for(key, self.state, self.cfg,
                                           self.run.root if self.run else None),
            changed=lambda: self.state.events_seen,
            refresh_s=self.settings.liveness_interval_s))

    def on_resize(self) -> None:
        # Short screens keep the log readable; tall ones give the loss a real plot.
        self.set_class(self.size.height < 30, "-short")
        self.set_class(self.size.height >= 40, "-tall")

    def next_cfg(self) -> dict[str, Any] | None:
        """The config the next run started here will use."""
        return self.next_run.cfg or self.cfg

    # -- control --------------------------------------------------------------------------
    def selected_stage(self) -> str:
        key = self.query_one(ChecklistTree).selected_key() or checklist.STAGE_IDS[0]
        return key.split(".")[0]

    def action_run_stage(self) -> None:
        stage = self.selected_stage()
        if self.state.stage_status.get(stage) == "ok":
            self.action_rerun()
            return
        block = self.blocker(stage)
        if block is None:
            self.guarded_start([stage])
            return
        if self._busy():
            return
        order = list(checklist.STAGE_IDS)
        stages = order[order.index(block.run_first): order.index(stage) + 1]
        spec, first = checklist.stage(stage), checklist.stage(block.run_first)
        cost = estimate.describe(stages, self.state, self.cfg)
        self.app.push_screen(
            ConfirmScreen(f"{spec.number}. {spec.title} is blocked: it {block.reason}.\n"
                          f"Run from {first.number}. {first.title} to {spec.number}. "
                          f"{spec.title}? Each stage starts only if the ones it needs pass."
                          + (f"\n{cost}" if cost else ""), yes=f"Run {first.title}"),
            lambda ok: ok and self.start(stages))

    def blocker(self, stage: str) -> checklist.Blocker | None:
        """What keeps ``stage`` from running, judged on what this run has recorded."""
        items = {k: str(c.get("status")) for k, c in self.state.checks.items()}
        return checklist.blocker(stage, self.state.stage_status, items, self.cfg)

    def guarded_start(self, stages: list[str], sets: list[str] | None = None,
                      what: str = "") -> None:
        """Cheap stages start at once; training, export or everything asks first."""
        costly = [s for s in stages if s in estimate.COSTLY]
        if not costly and len(stages) < len(checklist.STAGE_IDS):
            self.start(stages, sets)
            return
        if self._busy():
            return
        names = ", ".join(f"{checklist.stage(s).number}. {checklist.stage(s).title}"
                          for s in stages)
        self.app.push_screen(
            ConfirmScreen(f"{what or 'Start'} {names}?\n"
                          + estimate.describe(stages, self.state, self.cfg), yes="Start"),
            lambda ok: ok and self.start(stages, sets))

    def action_rerun(self) -> None:
        """Run the selected stage again: at once when cheap, after a question when costly."""
        stage = self.selected_stage()
        if stage not in self.state.stage_status:
            self.action_run_stage()  # never run: nothing to replace
            return
        self.guarded_start([stage], what="Re-run (its results are replaced)")

    def action_run_all(self) -> None:
        remaining = [s for s in checklist.STAGE_IDS if self.state.stage_status.get(s) != "ok"]
        if not remaining:
            self.notify("every stage has passed; x re-runs the selected one")
        else:
            self.guarded_start(remaining, what="Run, stopping at the first that fails:")

    def action_resume(self) -> None:
        order = list(checklist.STAGE_IDS)
        stopped = [s for s in order if self.state.stage_status.get(s) in
                   ("cancelled", "died", "failed")]
        if not stopped:
            self.notify("nothing was interrupted; a runs the remaining stages")
            return
        self.guarded_start(order[order.index(stopped[0]):], what="Resume")

    def action_apply_advice(self) -> None:
        """Offer the newest advice's suggested change: its settings on its stages."""
        offers = [a for a in self.state.advice.values()
                  if isinstance(a.get("change"), dict) and a["change"].get("stages")]
        if not offers:
            self.notify("no advice with a suggested change yet")
            return
        if self._busy():
            return
        advice = offers[-1]
        change = advice["change"]
        stages = [s for s in change["stages"] if s in checklist.STAGE_IDS]
        sets = [f"{k}={json.dumps(v)}" for k, v in (change.get("set") or {}).items()]
        extra = ""
        if change.get("add_records"):
            extra = ("\nAlso add records to the data: " + ", ".join(
                f"{n} {b}" for b, n in change["add_records"].items()) + ".")
        self.app.push_screen(
            ConfirmScreen(f"{advice.get('symptom')} → {advice.get('action')}\n"
                          f"Run {', '.join(stages)} with {', '.join(sets) or 'the same settings'}?"
                          + extra, yes="Apply"),
            lambda ok: ok and self.start(stages, sets))

    def action_edit_setting(self) -> None:
        self.app.push_screen(EditSettingScreen(self.next_run.sets), self._setting_given)

    def _setting_given(self, assignment: str | None) -> None:
        if assignment:
            self._resolve_worker(assignment)

    @work(thread=True, exclusive=True, group="resolve")
    def _resolve_worker(self, assignment: str) -> None:
        # The engine validates the setting (a subprocess): never on the UI thread.
        try:
            cfg = self.next_run.resolve(self.run, [assignment])
        except engine_client.EngineError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="setting not changed",
                                      severity="error", timeout=15)
        else:
            self.app.call_from_thread(self._setting_applied, assignment, cfg)

    def _setting_applied(self, assignment: str, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.query_one(ChecklistTree).show(self.state, self.cfg, force=True)
        self._redraw({"header"})
        self.notify(f"the next run uses {assignment}", timeout=5)

    def action_stop(self) -> None:
        if self.run is None or not self.run.pid():
            self.notify("no engine is running", severity="warning")
            return
        self.app.push_screen(
            ConfirmScreen(f"Stop the engine on {self.run.name}? It finishes the current step, "
                          "saves a checkpoint and ends the stage as cancelled.", yes="Stop"),
            lambda ok: ok and self.stop_engine())

    def stop_engine(self) -> None:
        if self.run is not None and self.run.stop() is not None:
            self.notify("asked the engine to stop after its current step")

    def _busy(self) -> bool:
        if self.starting or (self.run is not None and self.run.pid()):
            self.notify("an engine is already working on this run — s stops it",
                        severity="warning")
            return True
        return False

    def start(self, stages: list[str], sets: list[str] | None = None) -> None:
        if self._busy():
            return
        self.starting = True
        self._fast_poll.resume()
        self.notify(f"starting the engine: {', '.join(stages)}")
        self._start_worker(stages, self.run.name if self.run else None,
                           [*self.next_run.sets, *(sets or [])])

    @work(thread=True, exclusive=True, group="engine-start")
    def _start_worker(self, stages: list[str], run: str | None, sets: list[str]) -> None:
        # Starting waits for the engine's hello (it may import torch): never on the UI thread.
        try:
            started = engine_client.start(stages, run=run, sets=sets,
                                          config=self.next_run.config)
        except engine_client.EngineError as exc:
            self.app.call_from_thread(self._start_failed, str(exc))
        else:
            self.app.call_from_thread(self._started, started)

    def _start_failed(self, message: str) -> None:
        self.starting = False
        self.notify(message, title="the engine did not start", severity="error", timeout=15)

    def _started(self, started: engine_client.Started) -> None:
        self.starting = False
        if self.run is None or self.run.root.resolve() != started.path.resolve():
            self.run = RunFolder(started.path)
            self.follower = Follower(self.run)
            self.cfg = _read_cfg(self.run) or self.cfg
            self.query_one(ChecklistTree).show(self.state, self.cfg, force=True)
        self.engine_alive = True
        self.notify(f"engine pid {started.pid} is working on run {started.run}")
        self.poll()
        self._redraw({"header"})

    # -- views ----------------------------------------------------------------------------
    def action_toggle_pane(self, pane: str) -> None:
        widget = self.query_one(f"#{pane}")
        widget.display = not widget.display

    def action_loss_plot(self) -> None:
        self.app.push_screen(PlotScreen(self.state, self.settings.liveness_interval_s))

    def retheme(self) -> None:
        """Rich-text widgets hold resolved colours: draw them again in the new theme."""
        self.query_one(ChecklistTree).show(self.state, self.cfg, force=True)
        log = self.query_one(LogPane)
        log._shown = 0
        log.show(self.state)


def _read_cfg(run: RunFolder | None) -> dict[str, Any] | None:
    """The run's resolved config, or the shipped defaults before any run exists."""
    path = run.root / "config.toml" if run else DEFAULTS_TOML
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
