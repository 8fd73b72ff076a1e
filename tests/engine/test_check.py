"""Stage 1 through the real command line, on fixture files, with the real tokenizer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
# The fixtures are a handful of records: no totals warning noise, quick round-trips.
SMALL = ["--set", "sanity.expected_records_min=0", "--set", "sanity.expected_tokens_min=0"]


def check(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "web4tui", "check", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def check_json(*args: str) -> tuple[int, dict]:
    proc = check(*args, "--json", *SMALL)
    return proc.returncode, json.loads(proc.stdout)


def statuses(out: dict) -> dict[str, str]:
    return {c["item"]: c["status"] for c in out["checks"]}


def test_good_files_pass_with_bom_crlf_blank_lines_and_an_empty_file() -> None:
    code, out = check_json(str(FIX / "good"))
    assert code == 0, out
    st = statuses(out)
    assert set(st.values()) == {"pass"}, st
    rep = out["report"]
    assert rep["records"] == {"train/guardrail": 1, "train/mixed": 1, "train/style": 2,
                              "train/tool": 3, "train/tool_neg": 1}
    assert rep["empty_files"] == [str(FIX / "good" / "empty.jsonl")]
    tokens = rep["tokens"]["train"]
    assert 0 < tokens["p50"] <= tokens["p95"] <= tokens["max"]
    assert tokens["trained_tokens"] < tokens["total"]
    assert rep["roundtrip"]["checked"] == 8 and rep["roundtrip"]["failed"] == 0


EXPECTED = {
    "invalid_json": [2], "not_object": [2, 3], "missing_field": [2], "empty_field": [2],
    "not_string": [2], "unknown_bucket": [2], "duplicate": [3], "bad_field": [2],
    "too_long": [2], "invalid_utf8": [2], "bad_tool_call": [2],
}


@pytest.fixture(scope="module")
def bad_report() -> tuple[int, dict, str]:
    code, out = check_json(str(FIX / "bad"))
    human = check(str(FIX / "bad"), *SMALL)
    assert human.returncode == code
    return code, out, human.stdout


def test_every_bad_line_is_listed_with_file_line_and_reason(bad_report) -> None:
    code, out, _ = bad_report
    assert code == 1
    found: dict[str, list[int]] = {}
    for p in out["report"]["problems"]:
        found.setdefault(Path(p["file"]).stem, []).append(p["line"])
        assert Path(p["file"]).stem == p["reason"], p  # each file holds one kind of problem
    assert found == EXPECTED
    assert out["report"]["problem_counts"]["not_object"] == 2


def test_problem_messages_say_what_is_wrong(bad_report) -> None:
    _, out, _ = bad_report
    msgs = {p["reason"]: p["message"] for p in out["report"]["problems"]}
    assert "duplicate of" in msgs["duplicate"] and "duplicate.jsonl:1" in msgs["duplicate"]
    assert "0xe9" in msgs["invalid_utf8"]
    assert "'translation'" in msgs["unknown_bucket"]
    assert "tokens" in msgs["too_long"]
    assert "column" in msgs["invalid_json"]
    assert "not a tool call" in msgs["bad_tool_call"] and "<tool_call>" in msgs["bad_tool_call"]


def test_human_report_lists_file_line_and_counts_and_fails(bad_report) -> None:
    _, out, text = bad_report
    for stem, lines in EXPECTED.items():
        for line in lines:
            assert f"{stem}.jsonl:{line}  {stem}" in text
    assert "By reason:" in text and "FAILED" in text
    st = statuses(out)
    assert st["sanity.valid_jsonl"] == "fail" and st["sanity.fields"] == "fail"
    # A record too long for training is valid JSON: it fails its own item, not "Valid JSONL".
    assert st["sanity.fits_seq_len"] == "fail"
    valid = next(c for c in out["checks"] if c["item"] == "sanity.valid_jsonl")
    assert "too_long" not in valid["detail"]["problems"]
    # Each numeric item carries the number it judged beside its display text.
    measured = {c["item"]: c.get("measured") for c in out["checks"]}
    assert measured["sanity.valid_jsonl"] == sum(valid["detail"]["problems"].values()) > 0
    assert measured["sanity.fits_seq_len"] >= 1
    assert measured["sanity.avg_tokens"] > 0


def test_duplicates_can_be_made_warnings(tmp_path: Path) -> None:
    proc = check(str(FIX / "bad" / "duplicate.jsonl"), "--json", *SMALL,
                 "--set", "sanity.warn_only=['duplicate']")
    out = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert statuses(out)["sanity.valid_jsonl"] == "warn"


def test_a_50_mb_line_and_many_files(tmp_path: Path) -> None:
    good = (FIX / "good" / "clean.jsonl").read_text().splitlines()
    for i in range(120):
        (tmp_path / f"part-{i:03d}.jsonl").write_text(
            "\n".join(line.replace("Deploy api", f"Deploy api{i}").replace("adds two", f"adds {i}")
                      .replace("returns 1", f"returns {i}").replace("acme", f"acme{i}")
                      .replace("route in", f"route {i} in").replace("Scale api", f"Scale {i}")
                      for line in good) + "\n")
    huge = json.dumps({"task_type": "style", "instruction": "x", "input": "a" * 50_000_000,
                       "output": "y"})
    (tmp_path / "huge.jsonl").write_text(huge + "\n")
    code, out = check_json(str(tmp_path))
    problems = out["report"]["problems"]
    assert [(Path(p["file"]).name, p["line"], p["reason"]) for p in problems] == [
        ("huge.jsonl", 1, "too_long")]
    assert code == 1
    assert sum(out["report"]["records"].values()) == 120 * len(good)


def test_missing_path_is_bad_usage() -> None:
    proc = check("/nonexistent/data")
    assert proc.returncode == 2
    assert "/nonexistent/data: no such file or folder" in proc.stdout + proc.stderr


def test_bad_set_is_bad_usage_without_traceback() -> None:
    proc = check(str(FIX / "good"), "--set", "sanity.roundtrip_sample=3")
    assert proc.returncode == 2
    assert "did you mean 'roundtrip_samples'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_user_files_are_not_modified(tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in (FIX / "good").iterdir()}
    check(str(FIX / "good"))
    assert {p: p.read_bytes() for p in (FIX / "good").iterdir()} == before


def test_check_on_the_demo_data_passes_and_prints_statistics() -> None:
    proc = check("data/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert "Tokens per record" in text and "tool_neg" in text
    assert "Random samples" in text and "⟦" in text
    assert "✓ PASS Valid JSONL" in text
