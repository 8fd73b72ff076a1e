from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.records import bucket_of, find_files, iter_lines, parse_line, split_of


@pytest.mark.parametrize("raw,bucket", [("tool", "tool"), ("TOOL", "tool"), ("tool-neg", "tool_neg"),
                                        ("Tool_Neg", "tool_neg"), ("toolneg", "tool_neg"),
                                        ("style_core", "style"), ("Style-Core", "style"),
                                        ("guardrail", "guardrail"), ("mixed", "mixed"),
                                        ("chat", None)])
def test_bucket_matching_ignores_case_dash_underscore(raw: str, bucket: str | None) -> None:
    assert bucket_of(raw) == bucket


def _line(**fields: object) -> bytes:
    base = {"task_type": "style", "instruction": "i", "input": "", "output": "o"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def test_all_field_problems_of_a_line_are_reported_together() -> None:
    rec, problems = parse_line("f.jsonl", 4, _line(instruction=3, output="", input=...), "train")
    assert rec is None
    reasons = sorted((p.reason, p.field) for p in problems)
    assert reasons == [("empty_field", "output"), ("missing_field", "input"),
                       ("not_string", "instruction")]
    assert all(p.where == "f.jsonl:4" for p in problems)


def test_extra_fields_are_kept_and_id_defaults_to_file_line() -> None:
    rec, problems = parse_line("d/f.jsonl", 9, _line(source="crawl"), "train")
    assert not problems and rec is not None
    assert rec.extra == {"source": "crawl"} and rec.id == "f.jsonl:9"
    rec2, _ = parse_line("f.jsonl", 1, _line(id="tool-7"), "train")
    assert rec2 is not None and rec2.id == "tool-7"


@pytest.mark.parametrize("output, ok", [
    ('{"tool": "a", "arguments": {}}', True),
    ('<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>', True),
    ('[{"type": "function", "function": {"name": "a", "arguments": "{}"}}]', True),
    ("I would call a.", False),
    ('{"tool": "a", "arguments": "x"}', False),
])
def test_a_tool_record_must_hold_a_call_in_some_shape(output: str, ok: bool) -> None:
    rec, problems = parse_line("f.jsonl", 3, _line(task_type="tool", output=output), "train")
    assert (rec is not None) == ok
    if not ok:
        assert [(p.reason, p.field, p.where) for p in problems] == [
            ("bad_tool_call", "output", "f.jsonl:3")]
    # A mixed record is held to it only when it says it expects a tool call.
    mixed, _ = parse_line("f.jsonl", 4, _line(task_type="mixed", output=output), "train")
    assert mixed is not None


def test_user_text_is_instruction_blank_line_input() -> None:
    rec, _ = parse_line("f", 1, _line(input="ctx"), "train")
    assert rec is not None and rec.user_text == "i\n\nctx"


def test_mixed_record_declares_its_rule() -> None:
    rec, _ = parse_line("f", 1, _line(task_type="mixed", expect="tool-neg"), "train")
    assert rec is not None and rec.expect == "tool_neg" and rec.shows_tools
    _, problems = parse_line("f", 1, _line(task_type="mixed", expect="poetry"), "train")
    assert [p.reason for p in problems] == ["bad_field"]


def test_iter_lines_strips_bom_crlf_and_skips_blank(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_bytes(b"\xef\xbb\xbf{}\r\n\r\n  \n{\"a\": 1}\r\n")
    assert list(iter_lines(f)) == [(1, b"{}"), (4, b'{"a": 1}')]


def test_find_files_walks_folders_and_reports_missing(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "eval").mkdir()
    for name in ("train/b.jsonl", "train/a.jsonl", "eval/tool.jsonl", "notes.txt"):
        (tmp_path / name).write_text("")
    files, missing = find_files([tmp_path, tmp_path / "train" / "a.jsonl", tmp_path / "nope"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "eval/tool.jsonl", "train/a.jsonl", "train/b.jsonl"]
    assert missing and "nope" in missing[0]
    assert split_of(files[0]) == "eval" and split_of(files[1]) == "train"
