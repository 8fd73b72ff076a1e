"""The event protocol between the engine and anything that reads a run (stdlib only).

Every event is one JSON object on one line of ``outputs/<run>/events.jsonl``. The envelope is
``v, seq, ts, run, stage, type``; the payload fields sit beside it (see DESIGN §4). Readers
skip what they do not understand — an unknown type, a malformed line, a half-written last
line — so an old UI can follow a newer engine and a crash never poisons a run folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

VERSION = 1

#: Event types and the payload fields each carries (documentation and a light check for tests).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "hello": ("engine_version", "pid", "backend", "device", "python", "argv"),
    "stage_started": ("title", "total"),
    "progress": ("done", "total", "unit", "eta_s"),
    "metric": ("step", "values"),
    "memory": (
        "rss_gb", "device_gb", "device_peak_gb", "system_used_gb", "system_total_gb", "budget_gb",
    ),
    "check": ("item", "status", "value", "target", "detail"),
    "sample": ("step", "bucket", "prompt", "output", "verdict"),
    "advice": ("rule", "symptom", "action", "evidence"),
    "artifact": ("kind", "path"),
    "log": ("level", "message"),
    "stage_finished": ("status", "duration_s", "summary"),
    "error": ("message", "detail", "hint"),
}
EVENT_TYPES = frozenset(EVENT_FIELDS)
ENVELOPE = ("v", "seq", "ts", "run", "stage", "type")

CHECK_STATUSES = ("pass", "fail", "warn", "skip")
STAGE_STATUSES = ("ok", "failed", "cancelled", "skipped")


@dataclass(frozen=True)
class Event:
    """One decoded event: the envelope as attributes, the payload as a dict."""

    type: str
    seq: int
    ts: float
    run: str
    stage: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    v: int = VERSION

    def get(self, key: str, default: Any = None) -> Any:
        return self.payload.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": self.v, "seq": self.seq, "ts": self.ts, "run": self.run,
            "stage": self.stage, "type": self.type, **self.payload,
        }


def encode(event: Event) -> str:
    """One line of JSON, newline-terminated. Non-JSON values (paths, numpy floats) become text."""
    return json.dumps(event.to_dict(), ensure_ascii=False, default=_jsonable,
                      allow_nan=False) + "\n"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


def decode(line: str | bytes) -> Event | None:
    """Parse one line; None for anything that is not a well-formed event of a known type."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line:
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("type") not in EVENT_TYPES:
        return None
    seq, ts = obj.get("seq"), obj.get("ts")
    if not isinstance(seq, int) or not isinstance(ts, (int, float)):
        return None
    stage = obj.get("stage")
    payload = {k: v for k, v in obj.items() if k not in ENVELOPE}
    return Event(
        type=obj["type"], seq=seq, ts=float(ts), run=str(obj.get("run", "")),
        stage=stage if isinstance(stage, str) else None, payload=payload,
        v=obj.get("v", VERSION) if isinstance(obj.get("v"), int) else VERSION,
    )


class EventReader:
    """Incremental, tolerant reader of an events file: call :meth:`poll` for what is new.

    It remembers its byte offset and never re-reads the file; a partial last line (the engine
    is mid-write) is kept back until its newline arrives.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.offset = 0
        self._partial = b""
        self.skipped = 0  # malformed or unknown lines seen so far

    def poll(self, max_bytes: int | None = None) -> list[Event]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read() if max_bytes is None else fh.read(max_bytes)
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended on a newline
        events = []
        for raw in lines:
            ev = decode(raw)
            if ev is None:
                if raw.strip():
                    self.skipped += 1
                continue
            events.append(ev)
        return events


def read_events(path: str | os.PathLike[str]) -> Iterator[Event]:
    """Every complete, well-formed event in a file (a one-shot replay)."""
    reader = EventReader(path)
    yield from reader.poll()


class EventWriter:
    """Appends events to a run's events file, one flushed (and fsync'd on demand) line each.

    ``seq`` continues from what the file already holds, so a resumed run extends its history.
    """

    def __init__(self, path: str | os.PathLike[str], run: str, *, echo: Callable[[Event], None] | None = None,
                 fsync: bool = False) -> None:
        self.path = os.fspath(path)
        self.run = run
        self.stage: str | None = None
        self.echo = echo
        self.fsync = fsync
        self.seq = _last_seq(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 — owned by the writer

    def emit(self, type: str, stage: str | None = ..., **payload: Any) -> Event:  # type: ignore[assignment]
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        self.seq += 1
        ev = Event(type=type, seq=self.seq, ts=round(time.time(), 3), run=self.run,
                   stage=self.stage if stage is ... else stage, payload=payload)
        line = encode(ev)
        self._fh.write(line)
        self._fh.flush()
        if self.fsync or type in ("stage_finished", "error", "artifact"):
            os.fsync(self._fh.fileno())
        if self.echo is not None:
            self.echo(ev)
        return ev

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _last_seq(path: str) -> int:
    """The highest seq in an existing file (reads only its tail)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            tail = fh.read().split(b"\n")
    except FileNotFoundError:
        return 0
    for raw in reversed(tail):
        ev = decode(raw)
        if ev is not None:
            return ev.seq
    return 0
