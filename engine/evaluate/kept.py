"""Answers kept on disk as they arrive, so an interrupted evaluation resumes where it stopped.

``<results>/answers.jsonl``: one ``{"id", "answer", "n"}`` per answered record (``n``: its
place among the evaluated records), appended and flushed the moment the answer exists — the
predictions format, so ``web4tui evaluate --predictions`` re-scores it as it is.
``<results>/answers.key.json``: what those answers were made from — the source (its files'
sizes and times), the settings that shape an answer, the records.

A re-run whose key is the same reuses every answer written and generates only the rest; when
any part differs the file is started over, and the note says which part changed. A line cut
short by a kill is dropped (that record is answered again).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from engine.records import Record
from engine.runs import atomic_write

ANSWERS = "answers.jsonl"
KEY = "answers.key.json"

#: The settings an answer depends on (scoring thresholds don't change an answer).
SHAPING = (("eval", "max_new_tokens"), ("eval", "gguf_context"), ("data", "system_prompt"),
           ("model", "id"), ("deploy", "name"))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False,
                                     default=str).encode()).hexdigest()[:16]


def _files_of(label: str) -> list[Any]:
    """Size and modification time of what a source label names (a model file or folder):
    retraining an adapter or re-exporting a GGUF at the same path is another source."""
    where = label.split(":", 1)[-1].split(" (")[0]
    path = Path(where)
    try:
        if path.is_file():
            return [[path.name, path.stat().st_size, path.stat().st_mtime_ns]]
        if path.is_dir():
            return [[p.name, p.stat().st_size, p.stat().st_mtime_ns]
                    for p in sorted(path.iterdir()) if p.is_file()]
    except OSError:
        pass
    return []


def key_for(records: Sequence[Record], label: str, cfg: dict[str, Any]) -> dict[str, str]:
    tools_file = Path(cfg["data"]["tools"]) if cfg["data"].get("tools") else None
    try:
        tools = tools_file.read_text(encoding="utf-8") if tools_file else ""
    except OSError:
        tools = ""
    return {
        "source": _digest([label, _files_of(label)]),
        "settings": _digest([[cfg[s].get(k) for s, k in SHAPING], tools]),
        "records": _digest([[r.id, r.bucket, r.user_text, r.extra.get("tools")]
                            for r in records]),
    }


class KeptAnswers:
    """The answers file of one results folder; :meth:`open` first, then :meth:`add`."""

    def __init__(self, folder: str | Path, key: dict[str, str]) -> None:
        self.folder = Path(folder)
        self.key = key
        self.path = self.folder / ANSWERS
        self._out: Any = None

    def open(self, records: Sequence[Record]) -> tuple[dict[int, str], str | None]:
        """(answers already written, by record place; a note for the user or None)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key_path = self.folder / KEY
        try:
            old = json.loads(key_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        have: dict[int, str] = {}
        note = None
        if isinstance(old, dict) and self.path.is_file():
            changed = [part for part in ("source", "settings", "records")
                       if old.get(part) != self.key[part]]
            if changed:
                note = (f"answers in {self.path} were made with other "
                        f"{' and '.join(changed)}: starting over")
            else:
                have, torn = self._read(records)
                if torn:  # rewrite without the cut line so appends stay whole lines
                    self._rewrite(records, have)
                if have:
                    note = (f"reusing {len(have)} of {len(records)} answers already in "
                            f"{self.path}")
        if not have:
            atomic_write(self.path, "")
        atomic_write(key_path, json.dumps(self.key, indent=1) + "\n")
        self._out = open(self.path, "a", encoding="utf-8")
        return have, note

    def _read(self, records: Sequence[Record]) -> tuple[dict[int, str], bool]:
        have: dict[int, str] = {}
        torn = False
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    obj = json.loads(line)
                    n = obj["n"]
                    if not (isinstance(n, int) and 0 <= n < len(records)
                            and records[n].id == str(obj["id"])
                            and isinstance(obj["answer"], str)):
                        raise ValueError(line)
                except (ValueError, KeyError, TypeError):
                    torn = True
                    continue
                have[n] = obj["answer"]
        return have, torn

    def _rewrite(self, records: Sequence[Record], have: dict[int, str]) -> None:
        atomic_write(self.path, "".join(_line(n, records[n].id, a) for n, a in sorted(have.items())))

    def add(self, n: int, record_id: str, answer: str) -> None:
        self._out.write(_line(n, record_id, answer))
        self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def _line(n: int, record_id: str, answer: str) -> str:
    return json.dumps({"id": record_id, "answer": answer, "n": n}, ensure_ascii=False) + "\n"
