"""Following a run: replay its events, then tail them, and notice an engine that died.

Plain objects with no UI in them, so the headless ``web4tui run`` and the app share one
follower. The reader never re-reads the file; it keeps its offset (see engine.protocol).
"""

from __future__ import annotations

import os
import time
from typing import Callable, Iterator

from engine.protocol import Event, EventReader
from web4tui.runfolder import RunFolder


class Follower:
    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self.reader = EventReader(run.events)
        self.started: set[str] = set()
        self.finished: dict[str, str] = {}

    def poll(self, max_bytes: int | None = None) -> list[Event]:
        """What is new since the last poll (at most ``max_bytes`` of it); a stat when idle."""
        if not self.pending():
            return []
        events = self.reader.poll(max_bytes)
        for ev in events:
            if ev.type == "stage_started" and ev.stage:
                self.started.add(ev.stage)
            elif ev.type == "stage_finished" and ev.stage:
                self.finished[ev.stage] = ev.get("status", "")
        return events

    def pending(self) -> bool:
        """Bytes written that we have not read yet (one stat, no read)."""
        try:
            return os.stat(self.reader.path).st_size > self.reader.offset
        except FileNotFoundError:
            return False

    def engine_died(self) -> bool:
        """A stage started and never finished, and no engine is alive to finish it."""
        return bool(self.started - set(self.finished)) and self.run.pid() is None

    def follow(self, is_done: Callable[[], bool], interval: float = 0.1) -> Iterator[Event]:
        """Yield events until ``is_done()`` and nothing new is left to read."""
        while True:
            events = self.poll()
            yield from events
            if not events and is_done():
                yield from self.poll()
                return
            if not events:
                time.sleep(interval)
