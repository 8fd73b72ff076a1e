"""No line stops a check: thousands of generated bad lines of many kinds through the real
`web4tui check --json`; every one is reported with its file:line and reason, no traceback,
nothing in the input is modified."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "sanity.expected_records_min=0", "--set", "sanity.expected_tokens_min=0"]
BAD_LINES = 10_500


def good(i: int, **extra: object) -> dict:
    return {"task_type": "tool_neg", "instruction": f"Explain routing case {i}", "input": "",
            "output": f"Routes map path {i} to a handler.", **extra}


def dump(obj: object) -> bytes:
    return json.dumps(obj).encode()


def surrogate(i: int, field: str) -> bytes:
    """A record whose ``field`` holds an escaped lone surrogate (valid JSON, no character)."""
    if field == "id":
        return dump(good(i, id="x")).replace(b'"id": "x"', b'"id": "x\\udc00"')
    return dump(good(i)).replace(b'"input": ""', b'"input": "\\ud800"')


#: kind -> (expected reason, line maker)
KINDS: dict[str, tuple[str, Callable[[int, random.Random], bytes]]] = {
    "invalid_utf8": ("invalid_utf8", lambda i, r: dump(good(i))[:-2] + b"\xff\xfe\"}"),
    "truncated": ("invalid_json", lambda i, r: dump(good(i))[: r.randrange(1, 40)]),
    "trailing_garbage": ("invalid_json", lambda i, r: dump(good(i)) + b" x"),
    "two_objects": ("invalid_json", lambda i, r: dump(good(i)) + dump(good(i))),
    "raw_control_char": ("invalid_json",
                         lambda i, r: dump(good(i)).replace(b"Explain", b"Ex\x01plain")),
    "huge_integer": ("invalid_json", lambda i, r: b'{"id": ' + b"9" * 5000 + b"}"),
    "bom_inside": ("invalid_json", lambda i, r: b"\xef\xbb\xbf" + dump(good(i))),
    "array": ("not_object", lambda i, r: dump([good(i)])),
    "number": ("not_object", lambda i, r: str(i).encode()),
    "string": ("not_object", lambda i, r: dump(f"text {i}")),
    "null": ("not_object", lambda i, r: b"null"),
    "missing_field": ("missing_field",
                      lambda i, r: dump({k: v for k, v in good(i).items() if k != "output"})),
    "not_string": ("not_string", lambda i, r: dump(good(i) | {"output": i})),
    "nan_output": ("not_string",
                   lambda i, r: dump(good(i)).replace(b'"Routes map path', b'NaN, "x": "')),
    "empty_field": ("empty_field", lambda i, r: dump(good(i) | {"instruction": "  "})),
    "unknown_bucket": ("unknown_bucket", lambda i, r: dump(good(i) | {"task_type": "toolz"})),
    "refuse_not_bool": ("bad_field", lambda i, r: dump(good(i, refuse="yes"))),
    "id_list": ("bad_field", lambda i, r: dump(good(i, id=[i]))),
    "tools_function_text": ("bad_field", lambda i, r: dump(good(i, tools=[{"function": "x"}]))),
    "tools_function_null": ("bad_field", lambda i, r: dump(good(i, tools=[{"function": None}]))),
    "tools_null_item": ("bad_field", lambda i, r: dump(good(i, tools=[None]))),
    "tools_text": ("bad_field", lambda i, r: dump(good(i, tools="search"))),
    "expect_bad": ("bad_field", lambda i, r: dump(good(i, task_type="mixed", expect=3))),
    "surrogate_text": ("invalid_text", lambda i, r: surrogate(i, "input")),
    "surrogate_id": ("invalid_text", lambda i, r: surrogate(i, "id")),
    "surrogate_key": ("invalid_text",
                      lambda i, r: dump(good(i))[:-1] + b', "\\udfff": 1}'),
    "deep_brackets": ("too_deep", lambda i, r: b"[" * r.randrange(65, 6000)),
    "deep_in_field": ("too_deep", lambda i, r: dump(good(i))[:-1] + b', "extra": '
                      + b"[" * r.randrange(65, 3000) + b"]" * 10 + b"}"),
    "deep_objects": ("too_deep", lambda i, r: b'{"a":' * r.randrange(65, 3000)),
    "duplicate_key": ("duplicate_key", lambda i, r: dump(good(i))[:-1] + b', "output": 5}'),
}


def build(folder: Path) -> dict[tuple[str, int], str]:
    """Files of good and bad lines; returns (file, line) -> expected reason for the bad."""
    rng = random.Random(17)
    expected: dict[tuple[str, int], str] = {}
    names = list(KINDS)
    n = 0
    for part in range(3):
        path = folder / f"part{part}.jsonl"
        lines = []
        for j in range(BAD_LINES // 3 + 40):
            if j % 25 == 0:
                lines.append(dump(good(n)))
            else:
                kind = names[(n + part) % len(names)]
                reason, make = KINDS[kind]
                lines.append(make(n, rng))
                expected[(str(path), len(lines))] = reason
            n += 1
        path.write_bytes(b"\n".join(lines) + b"\n")
    # a CR-only file (old Mac line endings): three lines, one of them bad
    cr = folder / "classic.jsonl"
    cr.write_bytes(dump(good(n)) + b"\r" + b"[" * 2000 + b"\r" + dump(good(n + 1)) + b"\r")
    expected[(str(cr), 2)] = "too_deep"
    return expected


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_ten_thousand_bad_lines_of_thirty_kinds_are_each_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    expected = build(data)
    os.mkfifo(data / "pipe.jsonl")  # never opened: it would block a reader forever
    before = digest(data)
    assert len(expected) >= 10_000 and len(set(expected.values())) >= 10 and len(KINDS) >= 20
    proc = subprocess.run([sys.executable, "-m", "web4tui", "check", str(data), "--json",
                           *SMALL], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 1, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    got = {(p["file"], p["line"]): p["reason"] for p in out["report"]["problems"]}
    assert got == expected, {k: (got.get(k), v) for k, v in expected.items()
                             if got.get(k) != v} or set(got) - set(expected)
    assert out["report"]["missing"] == [f"{data / 'pipe.jsonl'}: is a FIFO, not a JSONL file"]
    assert digest(data) == before
    good_lines = out["report"]["lines"] - len(expected)
    assert sum(out["report"]["records"].values()) == good_lines


def test_randomly_mutated_records_never_raise_in_the_reader() -> None:
    """Beyond the kinds above: 20,000 random mutations of good records (bytes flipped, lines
    cut, fields given other types) read in-process; each gives a record or a reason."""
    from engine.records import REASONS, parse_line

    rng = random.Random(5)
    odd = [None, True, -1, 1.5, [], {}, [None], [{"function": "x"}], {"name": 3}, "\ud800",
           "\x1b[2J", "", "  ", 10**30]
    seeds = [dump(good(i, tools=[{"name": "t", "parameters": {}}], refuse=False, id=f"r{i}",
                       expect="tool")) for i in range(50)]
    for n in range(20_000):
        line = bytearray(rng.choice(seeds))
        how = n % 3
        if how == 0:
            for _ in range(rng.randrange(1, 5)):
                line[rng.randrange(len(line))] = rng.randrange(256)
        elif how == 1:
            line = line[: rng.randrange(1, len(line))]
        else:
            obj = json.loads(bytes(line))
            obj[rng.choice(sorted(obj))] = rng.choice(odd)
            line = bytearray(json.dumps(obj).encode())
        rec, problems = parse_line("f.jsonl", n + 1, bytes(line), "train")
        assert (rec is None) == bool(problems)
        assert all(p.reason in REASONS and p.where == f"f.jsonl:{n + 1}" for p in problems)
