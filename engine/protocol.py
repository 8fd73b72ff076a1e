"""The event protocol between the engine and anything that reads a run (stdlib only).

Every event is one JSON object on one line of ``outputs/<run>/events.jsonl``. The envelope is
``v, seq, ts, run, stage, type``; the payload fields sit beside it (:data:`PAYLOAD_TYPES`). Readers
skip what they do not understand — an unknown type, a malformed line, a half-written last
line — so an old UI can follow a newer engine and a crash never poisons a run folder.

The writer holds itself to the declared fields: :meth:`EventWriter.emit` checks each payload
against :data:`EVENT_FIELDS` and :data:`PAYLOAD_TYPES`. With ``WEB4TUI_STRICT_EVENTS=1`` (the
test suite sets it) a payload that breaks them raises; otherwise it is written and logged once,
so an undeclared field never stops a run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

VERSION = 1

#: Event types and the payload fields each may carry (every field optional to readers): what
#: :meth:`EventWriter.emit` checks a payload against. One field per line where fields get added.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "hello": (
        "engine_version", "pid", "backend", "device", "python", "argv",
        "backend_reason",  # why this backend and device, and the precision with its reason
        "precision",  # number format training uses (bf16/fp16/fp32, or mlx's model dtype)
        "precision_reason",
        "launcher",  # what started the training processes: "torch.distributed.run" or none
        "world_size",  # how many training processes
        "dist_backend",  # how they talk: "nccl" between GPUs, "gloo" on the CPU
        "devices",  # the device each process trains on
    ),
    "stage_started": ("title", "total"),
    "progress": (
        "done", "total", "unit", "eta_s",
        "message",  # what is being done, when the unit alone does not say (export, deploy)
    ),
    "metric": ("step", "values"),
    "memory": (
        "rss_gb", "device_gb", "device_peak_gb", "system_used_gb", "system_total_gb", "budget_gb",
        "device_cache_gb",  # MLX's buffer cache, held but reusable
        "ranks",  # with several training processes: each one's figures (the rest: the max)
    ),
    "check": (
        "item", "status",
        "value",  # display text: "96.0% (48/50)"
        "measured",  # the number judged, in the unit of the item's target: 0.96
        "target", "detail",
    ),
    "sample": ("step", "bucket", "prompt", "output", "verdict"),
    "advice": (
        "rule", "symptom", "action", "evidence",
        "change",  # the settings to change and the stages to run again, for the apply key
    ),
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


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num_or_none(v: Any) -> bool:
    return v is None or _num(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _str_or_none(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _numbers(v: Any) -> bool:
    return isinstance(v, dict) and all(_num_or_none(x) for x in v.values())


#: The payload fields readers compute with, and the type each must have: an event breaking
#: one is skipped like a malformed line (a poisoned run folder must not crash a reader).
PAYLOAD_TYPES: dict[str, dict[str, Callable[[Any], bool]]] = {
    "hello": {"pid": _int},
    "stage_started": {"title": _str_or_none, "total": _num_or_none},
    "progress": {"done": _num_or_none, "total": _num_or_none, "unit": _str_or_none,
                 "eta_s": _num_or_none},
    "metric": {"step": _int, "values": _numbers},
    "memory": {k: _num_or_none for k in EVENT_FIELDS["memory"] if k != "ranks"},
    "check": {"item": _str, "status": lambda v: v in CHECK_STATUSES, "measured": _num_or_none},
    "sample": {"step": lambda v: v is None or _int(v), "bucket": _str_or_none,
               "prompt": _str_or_none, "output": _str_or_none},
    "advice": {"rule": _str_or_none, "symptom": _str_or_none, "action": _str_or_none},
    "artifact": {"kind": _str, "path": _str},
    "log": {"level": _str, "message": _str},
    "stage_finished": {"status": _str, "duration_s": _num_or_none,
                       "summary": lambda v: v is None or isinstance(v, dict)},
    "error": {"message": _str, "hint": _str_or_none},
}


def well_formed(obj: Any) -> bool:
    """A known type, an int seq, a finite ts, a text-or-null stage and a payload of the right
    types (see :data:`PAYLOAD_TYPES`)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        return False
    checks = PAYLOAD_TYPES.get(obj["type"])
    if checks is None or not _int(obj.get("seq")) or not _num(obj.get("ts")) \
            or not _str_or_none(obj.get("stage")):
        return False
    return all(check(obj.get(name)) for name, check in checks.items())


def payload_problems(type: str, payload: dict[str, Any]) -> list[str]:
    """What is wrong with a payload for ``type``: fields it does not declare, fields of the
    wrong type (empty when it is what readers expect)."""
    declared = EVENT_FIELDS.get(type)
    if declared is None:
        return [f"unknown event type {type!r}"]
    problems = [f"{type}.{k} is not a declared field (add it to EVENT_FIELDS)"
                for k in payload if k not in declared]
    problems += [f"{type}.{k} = {payload.get(k)!r} has the wrong type"
                 for k, check in PAYLOAD_TYPES.get(type, {}).items() if not check(payload.get(k))]
    return problems


STRICT_ENV = "WEB4TUI_STRICT_EVENTS"
_log = logging.getLogger(__name__)
_reported: set[str] = set()


def _check_payload(type: str, payload: dict[str, Any]) -> None:
    problems = payload_problems(type, payload)
    if not problems:
        return
    if os.environ.get(STRICT_ENV) == "1":
        raise ValueError("; ".join(problems))
    for p in problems:
        if p not in _reported:  # once per process: a loop must not fill the log
            _reported.add(p)
            _log.warning("event payload: %s", p)


def no_json_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN / Infinity: the engine never writes them


def decode(line: str | bytes) -> Event | None:
    """Parse one line; None for anything that is not a well-formed event of a known type
    (nesting is bounded before parsing: no line can exhaust the recursion limit)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line or too_deep(line):
        return None
    try:
        obj = json.loads(line, parse_constant=no_json_constants)
    except (ValueError, RecursionError):
        return None
    if not well_formed(obj):
        return None
    payload = {k: v for k, v in obj.items() if k not in ENVELOPE}
    return Event(
        type=obj["type"], seq=obj["seq"], ts=float(obj["ts"]), run=str(obj.get("run", "")),
        stage=obj.get("stage"), payload=payload,
        v=obj.get("v", VERSION) if _int(obj.get("v")) else VERSION,
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
        return self.decode_lines(self.new_lines(max_bytes))

    def new_lines(self, max_bytes: int | None = None) -> list[bytes]:
        """The complete lines written since the last call (at most ``max_bytes`` read)."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read() if max_bytes is None else fh.read(max_bytes)
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended on a newline
        return lines

    def decode_lines(self, lines: list[bytes]) -> list[Event]:
        """The well-formed events among ``lines``; the malformed ones are counted as skipped."""
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
    The file only ever ends on a whole line: a write cut short (a full disk) is truncated
    back before the error is raised, and a torn last line left by a crash is closed with a
    newline when the next writer opens the file, so its first event is never glued to it.
    """

    def __init__(self, path: str | os.PathLike[str], run: str, *, echo: Callable[[Event], None] | None = None,
                 fsync: bool = False) -> None:
        self.path = os.fspath(path)
        self.run = run
        self.stage: str | None = None
        self.echo = echo
        self.fsync = fsync
        self.seq = _last_seq(self.path)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if size:
            with open(self.path, "rb") as fh:
                fh.seek(size - 1)
                torn = fh.read(1) != b"\n"
            if torn:
                self._append(b"\n")

    def _append(self, data: bytes) -> None:
        """Write all of ``data`` at the end, or nothing: a partial write is cut off again."""
        assert self._fd is not None
        before = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            try:
                os.ftruncate(self._fd, before)
            except OSError:
                pass
            raise

    def emit(self, type: str, stage: str | None = ..., **payload: Any) -> Event:  # type: ignore[assignment]
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        _check_payload(type, payload)
        ev = Event(type=type, seq=self.seq + 1, ts=round(time.time(), 3), run=self.run,
                   stage=self.stage if stage is ... else stage, payload=payload)
        line = encode(ev)
        try:
            data = line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from data: escaped, still one JSON line
            data = (json.dumps(ev.to_dict(), default=_jsonable, allow_nan=False) + "\n").encode()
        self._append(data)
        self.seq += 1  # only once the line is in the file: seq stays 1, 2, 3, ...
        if self.fsync or type in ("stage_finished", "error", "artifact"):
            assert self._fd is not None
            os.fsync(self._fd)
        if self.echo is not None:
            self.echo(ev)
        return ev

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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


# -- bounded JSON -------------------------------------------------------------------------------
# json.loads recurses once per nesting level and a 2 KB line of "[" reaches the interpreter's
# recursion limit, so every reader of files it does not own checks the nesting first.

#: Deepest nesting an event may have (the engine writes at most a few levels).
MAX_DEPTH = 64
_BYTES_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_TEXT_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def too_deep(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """True when JSON ``text`` nests arrays/objects deeper than ``limit`` (linear time;
    brackets inside strings do not count)."""
    if isinstance(text, bytes):
        opens, tokens, open_chars = text.count(b"[") + text.count(b"{"), _BYTES_TOKENS, b"[{"
    else:
        opens, tokens, open_chars = text.count("[") + text.count("{"), _TEXT_TOKENS, "[{"
    if opens <= limit:
        return False
    depth = 0
    for m in tokens.finditer(text):
        tok = m.group()
        if len(tok) != 1:
            continue  # a string
        if tok in open_chars:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


# -- text from data, shown and never obeyed ----------------------------------------------------

def valid_text(text: str) -> bool:
    """False for text holding lone surrogates (undecodable bytes, broken escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# C0 controls but tab and newline, DEL, C1 controls (ESC starts terminal commands: clear the
# screen, set the title, write the clipboard), and lone surrogates.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f,
                                        *range(0x80, 0xa0))}
_CONTROLS_ONE_LINE = {**_CONTROLS, 0x09: "\\t", 0x0a: "\\n"}
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(value: Any) -> Any:
    """``value`` with :func:`printable` applied to every text inside it (lists, dicts), for
    showing data from a run folder; values without control characters are returned as is."""
    if isinstance(value, str):
        return printable(value) if _UNSAFE.search(value) else value
    if isinstance(value, list):
        return [shown(v) for v in value]
    if isinstance(value, dict):
        return {shown(k): shown(v) for k, v in value.items()}
    return value


def printable(text: object, *, one_line: bool = False) -> str:
    """``text`` safe to write to a terminal: control characters (and, with ``one_line``, tab
    and newline) shown as ``\\xNN`` escapes, lone surrogates as ``\\udNNN``."""
    out = str(text).translate(_CONTROLS_ONE_LINE if one_line else _CONTROLS)
    if not valid_text(out):
        out = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)
    return out


# -- the smoothed loss ---------------------------------------------------------------------------
def smooth_next(prev: float | None, x: float, a: float) -> float:
    """One step of the loss curve's exponential moving average, ``s = a*s_prev + (1-a)*x``,
    started from the first value: the curve the loss checks judge and the loss pane draws
    (here, in a module the UI may import, so both read the same definition)."""
    return x if prev is None else a * prev + (1 - a) * x


def smooth(values: list[float], a: float) -> list[float]:
    """The whole smoothed curve (see :func:`smooth_next`)."""
    out: list[float] = []
    for x in values:
        out.append(smooth_next(out[-1] if out else None, x, a))
    return out
