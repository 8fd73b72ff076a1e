"""Reading training records: streaming, tolerant, and precise about every bad line.

Files are read as bytes, line by line, so a 50 MB line, invalid UTF-8, a BOM or CRLF endings
are handled explicitly instead of crashing a decoder. Every problem is reported with its file
and 1-based line number; nothing in the user's files is ever modified.
"""

from __future__ import annotations

import functools
import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from engine import toolcalls
from engine.protocol import too_deep

REQUIRED = ("task_type", "instruction", "input", "output")
#: Fields that must not be empty (``input`` may be).
NON_EMPTY = ("task_type", "instruction", "output")
BUCKETS = ("tool", "tool_neg", "style", "guardrail", "mixed")
#: Extra spellings accepted for a bucket (after lower-casing and dropping '-' and '_').
ALIASES = {"stylecore": "style"}
_CANON = {b.replace("_", ""): b for b in BUCKETS} | ALIASES

#: Every reason a line can be reported for, with the one-line explanation shown to users.
REASONS: dict[str, str] = {
    "invalid_utf8": "not valid UTF-8",
    "invalid_json": "not valid JSON",
    "invalid_text": "a text holds a lone surrogate escape (no character; not encodable)",
    "too_deep": "nested deeper than data.max_depth",
    "duplicate_key": "an object names the same key twice (which value counts is ambiguous)",
    "not_object": "not a JSON object",
    "missing_field": "a required field is missing",
    "not_string": "a field is not a string",
    "empty_field": "a required field is empty",
    "unknown_bucket": "task_type names no known bucket",
    "bad_field": "an optional field has the wrong shape",
    "bad_tool_call": "a tool record's output is not a tool call in any shape we read",
    "duplicate": "exact duplicate of an earlier record",
    "too_long": "longer than the sequence length",
}


def bucket_of(task_type: str) -> str | None:
    """The canonical bucket for a task_type, ignoring case, '-' and '_' (None if unknown)."""
    key = task_type.strip().lower().replace("-", "").replace("_", "")
    return _CANON.get(key)


@dataclass
class Problem:
    path: str
    line: int
    reason: str
    message: str
    field: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "reason": self.reason,
                "field": self.field, "message": self.message}


@dataclass
class Record:
    """A valid record and where it came from."""

    path: str
    line: int
    bucket: str
    instruction: str
    input: str
    output: str
    id: str
    split: str  # "train" or "eval"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def user_text(self) -> str:
        """What the user turn says: the instruction, then a blank line and the input."""
        return f"{self.instruction}\n\n{self.input}" if self.input else self.instruction

    @property
    def expect(self) -> str:
        """The bucket whose rules the output follows (mixed records declare it)."""
        if self.bucket == "mixed":
            e = self.extra.get("expect")
            return bucket_of(e) or "mixed" if isinstance(e, str) else "mixed"
        return self.bucket

    @property
    def shows_tools(self) -> bool:
        return self.expect in ("tool", "tool_neg")


class DataFileError(OSError):
    """A data file that cannot be read as one: the message names it and why."""


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def not_a_file(mode: int) -> str | None:
    """What a path is when it is not a regular file (None for a regular file)."""
    return None if stat.S_ISREG(mode) else next(
        (name for test, name in _KINDS if test(mode)), "not a regular file")


def open_data_file(path: str | os.PathLike[str]) -> Any:
    """Open a file for reading in binary, refusing folders, FIFOs and devices before any read
    (a FIFO would block forever) with a :class:`DataFileError` that names the problem."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except PermissionError:
        raise DataFileError(f"{path}: permission denied; make it readable (chmod +r)") from None
    except IsADirectoryError:
        raise DataFileError(f"{path}: is a folder, not a file") from None
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot be opened ({exc.strerror or exc})") from None
    kind = not_a_file(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise DataFileError(f"{path}: is {kind}, not a regular file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def find_files(paths: list[str | os.PathLike[str]]) -> tuple[list[Path], list[str]]:
    """JSONL files under the given files/folders (sorted), and a message for every path that
    is missing, unreadable, not a regular file, or a folder without JSONL files."""
    files: list[Path] = []
    missing: list[str] = []
    for p in map(Path, paths):
        try:
            mode = os.stat(p).st_mode
        except FileNotFoundError:
            missing.append(f"{p}: no such file or folder")
            continue
        except OSError as exc:
            missing.append(f"{p}: cannot be read ({exc.strerror or exc})")
            continue
        if stat.S_ISDIR(mode):
            found = _walk_jsonl(p, missing)
            if not found and not any(m.startswith(f"{p}") for m in missing):
                missing.append(f"{p}: a folder with no .jsonl files in it")
            files.extend(found)
        elif (kind := not_a_file(mode)) is not None:
            missing.append(f"{p}: is {kind}, not a JSONL file")
        elif not os.access(p, os.R_OK):
            missing.append(f"{p}: permission denied; make it readable (chmod +r)")
        else:
            files.append(p)
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, missing


def _walk_jsonl(folder: Path, missing: list[str]) -> list[Path]:
    """``*.jsonl`` regular files under a folder (sorted); what cannot be read is reported."""
    def unreadable(exc: OSError) -> None:
        missing.append(f"{exc.filename}: folder cannot be read ({exc.strerror or exc})")

    found = []
    for dirpath, _dirs, names in os.walk(folder, onerror=unreadable):
        for name in names:
            if not name.endswith(".jsonl"):
                continue
            f = Path(dirpath) / name
            try:
                kind = not_a_file(os.stat(f).st_mode)
            except OSError as exc:
                missing.append(f"{f}: cannot be read ({exc.strerror or exc})")
                continue
            if kind is not None:
                missing.append(f"{f}: is {kind}, not a JSONL file")
            elif not os.access(f, os.R_OK):
                missing.append(f"{f}: permission denied; make it readable (chmod +r)")
            else:
                found.append(f)
    return sorted(found)


def split_of(path: Path) -> str:
    """Files under a folder named ``eval`` are held-out evaluation data."""
    return "eval" if "eval" in path.parts[:-1] or path.parent.name == "eval" else "train"


#: How much of a file is looked at to tell CR-only line endings (old Mac) from LF / CRLF.
_SNIFF_BYTES = 1 << 16


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes without line ending) for every non-blank line.

    Lines end with LF or CRLF; a file with CR but no LF in its first 64 KB is read as CR-only.
    Raises :class:`DataFileError` for a path that is not a readable regular file.
    """
    with open_data_file(path) as fh:
        head = fh.read(_SNIFF_BYTES)
        fh.seek(0)
        lines = _split_cr(fh) if b"\r" in head and b"\n" not in head else fh
        for number, raw in enumerate(lines, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield number, raw


def _split_cr(fh: Any) -> Iterator[bytes]:
    rest = b""
    while chunk := fh.read(1 << 20):
        parts = (rest + chunk).split(b"\r")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


@functools.lru_cache(maxsize=1)
def default_max_depth() -> int:
    """``data.max_depth`` from the shipped defaults (for callers without a config)."""
    with open(Path(__file__).with_name("defaults.toml"), "rb") as fh:
        return int(tomllib.load(fh)["data"]["max_depth"])


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Measured on 3 KB records with tool listings: json.loads 12 us a line, 18 us with this
    # hook (0.25 s per 40,000 records). A profiler inflates it (it is called once per object);
    # checks without the hook (re-dumping, or walking the value to count its keys against the
    # key ends in the text) cost 7-13x more.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
    return obj


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    return False


def read_json_line(raw: bytes, max_depth: int | None = None) -> tuple[Any, str | None, str]:
    """Decode one line as JSON text: (value, None, "") or (None, reason, message).

    Every way a line can be bad comes back as a reason (see :data:`REASONS`), never as an
    exception: invalid UTF-8, nesting deeper than ``max_depth`` (checked before parsing, so
    no recursion limit is ever reached), invalid JSON, a key given twice, a lone surrogate.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, "invalid_utf8", (f"invalid UTF-8 byte 0x{raw[exc.start]:02x} at byte "
                                      f"{exc.start}; re-save the file as UTF-8")
    limit = default_max_depth() if max_depth is None else max_depth
    if too_deep(raw, limit):
        return None, "too_deep", (f"nested deeper than {limit} levels (data.max_depth); "
                                  "a record is a flat object of texts")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as dup:
        return None, "duplicate_key", (f"key {ascii(dup.key)} appears twice in one object; "
                                       "keep one (readers disagree on which one wins)")
    except RecursionError:
        return None, "too_deep", "nested too deeply to read"
    except ValueError as exc:
        msg = getattr(exc, "msg", str(exc))
        col = getattr(exc, "colno", None)
        return None, "invalid_json", msg + (f" at column {col}" if col else "")
    if _SURROGATE_ESCAPE.search(raw) and _lone_surrogate(obj):
        name = surrogate_field(obj)
        where = f" in field {ascii(name)}" if name is not None else ""
        return None, "invalid_text", (f"a lone surrogate escape (\\ud800-\\udfff without its pair)"
                                      f"{where} is no character; fix the text")
    return obj, None, ""


def surrogate_field(obj: Any) -> str | None:
    """The first top-level field of an object whose name or value holds a lone surrogate."""
    if isinstance(obj, dict):
        return next((k for k, v in obj.items() if _lone_surrogate(k) or _lone_surrogate(v)),
                    None)
    return None


def parse_line(path: str, number: int, raw: bytes, split: str, *,
               max_depth: int | None = None) -> tuple[Record | None, list[Problem]]:
    """One line → a record, or every problem with it (all fields, not just the first)."""
    obj, reason, message = read_json_line(raw, max_depth)
    if reason is not None:
        return None, [Problem(path, number, reason, message)]
    if not isinstance(obj, dict):
        return None, [Problem(path, number, "not_object",
                              f"expected a JSON object, got {type(obj).__name__}")]
    problems = []
    for name in REQUIRED:
        if name not in obj:
            problems.append(Problem(path, number, "missing_field",
                                    f"field {name!r} is missing", name))
        elif not isinstance(obj[name], str):
            problems.append(Problem(path, number, "not_string",
                                    f"field {name!r} must be a string, got "
                                    f"{type(obj[name]).__name__}", name))
        elif name in NON_EMPTY and not obj[name].strip():
            problems.append(Problem(path, number, "empty_field", f"field {name!r} is empty", name))
    bucket = None
    if isinstance(obj.get("task_type"), str) and obj["task_type"].strip():
        bucket = bucket_of(obj["task_type"])
        if bucket is None:
            problems.append(Problem(
                path, number, "unknown_bucket",
                f"task_type {obj['task_type']!r} is not one of {', '.join(BUCKETS)} "
                "(case, '-' and '_' are ignored)", "task_type"))
    problems.extend(_optional_fields(path, number, obj))
    if not problems:
        problems.extend(_tool_output(path, number, obj, bucket))
    if problems:
        return None, problems
    extra = {k: v for k, v in obj.items() if k not in REQUIRED}
    rid = obj.get("id")
    return Record(path=path, line=number, bucket=bucket or "mixed",
                  instruction=obj["instruction"], input=obj["input"], output=obj["output"],
                  id=str(rid) if rid is not None else f"{Path(path).name}:{number}",
                  split=split, extra=extra), []


def _optional_fields(path: str, number: int, obj: dict[str, Any]) -> list[Problem]:
    problems = []
    if "refuse" in obj and not isinstance(obj["refuse"], bool):
        problems.append(Problem(path, number, "bad_field",
                                "field 'refuse' must be true or false", "refuse"))
    if "id" in obj and not isinstance(obj["id"], (str, int)):
        problems.append(Problem(path, number, "bad_field",
                                "field 'id' must be a string or an integer", "id"))
    tools = obj.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(map(_tool_named, tools))):
        problems.append(Problem(path, number, "bad_field",
                                "field 'tools' must be a list of tool objects with a 'name' "
                                "(the shape of data/tools.json)", "tools"))
    expect = obj.get("expect")
    if expect is not None and (not isinstance(expect, str) or bucket_of(expect) in (None, "mixed")):
        problems.append(Problem(path, number, "bad_field",
                                "field 'expect' must name a bucket: tool, tool_neg, style or "
                                "guardrail", "expect"))
    return problems


def _tool_output(path: str, number: int, obj: dict[str, Any], bucket: str | None
                 ) -> list[Problem]:
    """A tool record (or a mixed one that expects a tool call) must hold a readable call."""
    expect = bucket_of(obj["expect"]) if bucket == "mixed" and isinstance(obj.get("expect"), str) \
        else bucket
    if expect != "tool":
        return []
    try:
        toolcalls.read_calls(obj["output"])
    except toolcalls.ToolCallError as exc:
        return [Problem(path, number, "bad_tool_call",
                        f"field 'output' is not a tool call ({exc}); write it as "
                        '{"name": ..., "arguments": {...}}, {"tool": ..., "arguments": ...}, an '
                        "OpenAI tool_calls entry or <tool_call> text", "output")]
    return []


def _tool_named(tool: Any) -> bool:
    """A tool object with a name: ``{"name": ...}`` or OpenAI's ``{"function": {"name"}}``."""
    if not isinstance(tool, dict):
        return False
    fn = tool.get("function")
    name = tool.get("name") if "name" in tool else (fn.get("name") if isinstance(fn, dict)
                                                    else None)
    return isinstance(name, str) and bool(name.strip())


def load_tools(path: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    """The global tool definitions (a JSON array); [] when there is no file."""
    if not path:
        return []
    p = Path(path)
    if not p.exists():
        return []
    try:
        with open_data_file(p) as fh:
            data = fh.read()
    except DataFileError as exc:
        raise ValueError(f"{exc}; fix data.tools or set data.tools = \"\"") from None
    tools, reason, message = read_json_line(data.removeprefix(b"\xef\xbb\xbf"))
    if reason is not None:
        raise ValueError(f"{p}: {REASONS[reason]} ({message}); fix it or set data.tools = \"\"")
    if not isinstance(tools, list):
        raise ValueError(f"{p}: expected a JSON array of tools")
    return tools
