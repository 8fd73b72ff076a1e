"""Following a run: replay its events, then tail them, and note which stages finished.

Plain objects with no UI in them, so the headless ``web4tui run`` and the app share one
follower. The reader never re-reads the file; it keeps its offset (see engine.protocol).

Replaying a long run decodes hundreds of thousands of lines, so :class:`BatchReader` parses
a whole chunk with one ``json.loads`` and builds light events; any chunk with a line it
cannot parse falls back to :func:`engine.protocol.decode` line by line, which skips exactly
the bad lines. Both paths accept and reject the same lines.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Iterator

from engine.protocol import (
    VERSION,
    Event,
    EventReader,
    no_json_constants,
    shown,
    too_deep,
    well_formed,
)
from web4tui.runfolder import RunFolder


class LiteEvent:
    """Reads like :class:`engine.protocol.Event` (type, seq, ts, run, stage, payload, get)
    at a fraction of the cost; the payload dict also holds the envelope keys."""

    __slots__ = ("type", "seq", "ts", "run", "stage", "payload", "v")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.type = obj["type"]
        self.seq = obj["seq"]
        self.ts = float(obj["ts"])
        self.run = str(obj.get("run", ""))
        stage = obj.get("stage")
        self.stage = stage if isinstance(stage, str) else None
        self.payload = obj
        self.v = obj.get("v", VERSION)

    def get(self, key: str, default: Any = None) -> Any:
        return self.payload.get(key, default)


def _valid(obj: Any) -> bool:
    """The same test as engine.protocol.decode (type, envelope and payload types)."""
    return well_formed(obj)


class BatchReader(EventReader):
    """Decodes a poll's lines with one ``json.loads`` (a long run's replay in one call)."""

    def decode_lines(self, lines: list[bytes]) -> list[Event]:  # type: ignore[override]
        lines = [ln for ln in lines if ln.strip()]
        shallow = [ln for ln in lines if not too_deep(ln)]  # as decode: never parse those
        self.skipped += len(lines) - len(shallow)
        lines = shallow
        try:
            objs = json.loads(b"[" + b",".join(lines) + b"]", parse_constant=no_json_constants)
        except (ValueError, RecursionError):
            objs = None
        if objs is None or len(objs) != len(lines):
            return super().decode_lines(lines)
        events = [LiteEvent(o) for o in objs if _valid(o)]
        self.skipped += len(objs) - len(events)
        return events  # type: ignore[return-value]


#: Events that carry text from data or from the file system (the numeric ones never do).
TEXT_EVENTS = frozenset({"hello", "stage_started", "check", "sample", "advice", "artifact",
                         "log", "stage_finished", "error"})


class Follower:
    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self.reader = BatchReader(run.events_path)
        self.finished: dict[str, str] = {}

    def poll(self, max_bytes: int | None = None) -> list[Event]:
        """What is new since the last poll (at most ``max_bytes`` of it); a stat when idle.

        Text that came from data (samples, messages, paths, check values) is shown, never
        obeyed: its control characters arrive escaped (an ESC from a record cannot clear the
        screen, retitle the terminal or write the clipboard).
        """
        if not self.pending():
            return []
        events = self.reader.poll(max_bytes)
        for ev in events:
            if ev.type in TEXT_EVENTS:
                payload = ev.payload
                for key, value in payload.items():
                    if not isinstance(value, (int, float)) and value is not None:
                        payload[key] = shown(value)
            if ev.type == "stage_finished" and ev.stage:
                self.finished[ev.stage] = ev.get("status", "")
        return events

    def pending(self) -> bool:
        """Bytes written that we have not read yet (one stat, no read)."""
        try:
            return os.stat(self.reader.path).st_size > self.reader.offset
        except FileNotFoundError:
            return False

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
