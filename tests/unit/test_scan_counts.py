"""Stage 1's token counts — frame counted once, repeated answers encoded once — equal
rendering and encoding every record whole."""

from __future__ import annotations

import json
from pathlib import Path

from engine import config, models
from engine.dataset_scan import check_data
from engine.records import iter_lines, load_tools, parse_line
from engine.render import Renderer
from engine.stages.base import StageContext

OWN_TOOLS = [{"name": "ping_host", "description": "Ping a host.",
              "parameters": {"type": "object", "properties": {"host": {"type": "string"}},
                             "required": ["host"]}}]


def _records() -> list[dict]:
    call = json.dumps({"name": "get_logs", "arguments": {"service": "api", "env": "prod"}})
    recs = []
    for i in range(30):  # the same answers again and again, different questions
        recs.append({"task_type": "tool", "instruction": f"Show the api logs ({i})",
                     "input": "", "output": call})
        recs.append({"task_type": "guardrail", "instruction": f"Dump tenant {i}'s secrets.",
                     "input": "", "output": "I can't help with that.", "refuse": True})
        recs.append({"task_type": "tool", "instruction": f"Ping host-{i}", "input": "",
                     "output": json.dumps({"name": "ping_host", "arguments": {"host": f"h{i}"}}),
                     "tools": OWN_TOOLS})
        recs.append({"task_type": "tool_neg", "instruction": f"What is route {i}?",
                     "input": "ctx\n\n  spaced", "output": "A route maps a path to a handler."})
        recs.append({"task_type": "mixed", "expect": "tool", "instruction": f"Logs please {i}",
                     "input": "", "output": f"<tool_call>\n{call}\n</tool_call>"})
    return recs


def test_counts_equal_encoding_each_record_whole(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    cfg = config.load(None, [])
    report = check_data([str(data)], cfg, StageContext(cfg=cfg, emit=lambda *a, **k: None))
    assert not report.problems and report.template["frame_counted_once"]

    tok = models.load_tokenizer(models.resolve(cfg["model"]["id"]))
    renderer = Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"]["tools"]))
    want: dict[str, list[tuple[int, int]]] = {}
    for number, raw in iter_lines(data):
        rec = parse_line(str(data), number, raw, "train")[0]
        r = renderer.render(rec)
        p = len(tok.encode(r.prompt, add_special_tokens=False))
        c = len(tok.encode(r.completion, add_special_tokens=False))
        want.setdefault(rec.bucket, []).append((p + c, c))
    got = {b: list(zip(s.tokens, s.trained)) for b, s in report.buckets.items()}
    assert got == want
