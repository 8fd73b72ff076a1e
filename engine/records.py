"""Reading training records: streaming, tolerant, and precise about every bad line.

Files are read as bytes, line by line, so a 50 MB line, invalid UTF-8, a BOM or CRLF endings
are handled explicitly instead of crashing a decoder. Every problem is reported with its file
and 1-based line number; nothing in the user's files is ever modified.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from engine import toolcalls

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


def find_files(paths: list[str | os.PathLike[str]]) -> tuple[list[Path], list[str]]:
    """JSONL files under the given files/folders (sorted), and messages for paths not found."""
    files: list[Path] = []
    missing: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*.jsonl") if f.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            missing.append(f"{p}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, missing


def split_of(path: Path) -> str:
    """Files under a folder named ``eval`` are held-out evaluation data."""
    return "eval" if "eval" in path.parts[:-1] or path.parent.name == "eval" else "train"


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes without line ending) for every non-blank line."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield number, raw


def parse_line(path: str, number: int, raw: bytes, split: str
               ) -> tuple[Record | None, list[Problem]]:
    """One line → a record, or every problem with it (all fields, not just the first)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(path, number, "invalid_utf8",
                              f"invalid UTF-8 byte 0x{raw[exc.start]:02x} at byte {exc.start}; "
                              "re-save the file as UTF-8")]
    try:
        obj = json.loads(text)
    except ValueError as exc:
        msg = getattr(exc, "msg", str(exc))
        col = getattr(exc, "colno", None)
        at = f" at column {col}" if col else ""
        return None, [Problem(path, number, "invalid_json", f"{msg}{at}")]
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
    if tools is not None and not (isinstance(tools, list) and all(
            isinstance(t, dict) and isinstance(t.get("name") or t.get("function", {}).get("name"),
                                               str) for t in tools)):
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


def load_tools(path: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    """The global tool definitions (a JSON array); [] when there is no file."""
    if not path:
        return []
    p = Path(path)
    if not p.exists():
        return []
    try:
        tools = json.loads(p.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise ValueError(f"{p}: not valid JSON ({exc}); fix it or set data.tools = \"\"") from None
    if not isinstance(tools, list):
        raise ValueError(f"{p}: expected a JSON array of tools")
    return tools
