"""Text from data is shown, never obeyed: terminal escapes in records, file names and run
events reach the terminal as visible \\x1b text, in `check`, `run` and the app's events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.protocol import EventWriter
from web4tui.cli import LinePrinter
from web4tui.follow import Follower
from web4tui.runfolder import RunFolder

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "sanity.expected_records_min=0", "--set", "sanity.expected_tokens_min=0",
         "--set", "sanity.show_samples=3"]
CLEAR, TITLE, CLIPBOARD = "\x1b[2J", "\x1b]0;pwned\x07", "\x1b]52;c;ZWNobyBwd25lZA==\x07"


def test_check_escapes_record_text_and_file_names(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    name = data / "\x1b[31mred.jsonl"
    records = [{"task_type": "tool_neg", "instruction": f"Say {CLEAR}hi {i}", "input": TITLE,
                "output": f"Hello{CLIPBOARD} \x9b {i}"} for i in range(3)]
    name.write_text("\n".join(json.dumps(r) for r in records) + "\n{bad\n")
    human = subprocess.run([sys.executable, "-m", "web4tui", "check", str(data), *SMALL],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "Traceback" not in human.stderr, human.stderr
    for raw in ("\x1b", "\x07", "\x9b"):
        assert raw not in human.stdout
    assert "\\x1b[31mred.jsonl:4" in human.stdout  # the bad line's file name, escaped
    assert "\\x1b[2Jhi" in human.stdout and "\\x1b]52;c;" in human.stdout  # the samples
    machine = subprocess.run([sys.executable, "-m", "web4tui", "check", str(data), "--json",
                              *SMALL], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "\x1b" not in machine.stdout and "\x9b" not in machine.stdout
    out = json.loads(machine.stdout)
    assert out["report"]["problems"][0]["file"] == str(name)  # exact in the data


def test_run_events_reach_the_terminal_and_the_app_escaped(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    root = tmp_path / "r"
    root.mkdir()
    w = EventWriter(root / "events.jsonl", "r")
    w.stage = "dry_run"
    w.emit("sample", step=1, bucket="tool_neg", prompt=TITLE, output=f"ok{CLIPBOARD}",
           verdict={"passed": True})
    w.emit("log", level="warning", message=f"model said {CLEAR}")
    w.emit("error", message="failed", detail=None, hint=f"see {TITLE}")
    w.close()
    events = Follower(RunFolder(root)).poll()
    assert [e.get("output") for e in events if e.type == "sample"] == \
        ["ok\\x1b]52;c;ZWNobyBwd25lZA==\\x07"]
    printer = LinePrinter()
    for ev in events:
        printer.show(ev)
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown
    assert "model said \\x1b[2J" in shown and "hint: see \\x1b]0;pwned\\x07" in shown
