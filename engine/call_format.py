"""Which tool-call format a model was trained on, and whether what serves it agrees.

Training records the format next to the adapter (``tool_format.json``); evaluation, export
and deployment compare it with the format of the chat template that will render prompts and
that the server will parse calls with (:func:`engine.toolcalls.template_format`). A model
trained to answer ``<tool_call>`` blocks behind a template whose server expects something
else gives ``tool_calls: null`` in Ollama — this makes that a loud failure before it ships.
Stdlib only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from engine.toolcalls import FORMATS

RECORD = "tool_format.json"


def record_trained(adapter_dir: Path, call_format: str, chat_template: str | None) -> None:
    """Write what the adapter was trained to emit (atomically, beside the adapter)."""
    from engine.runs import atomic_write

    sha = hashlib.sha256((chat_template or "").encode("utf-8")).hexdigest()
    atomic_write(Path(adapter_dir) / RECORD, json.dumps(
        {"format": call_format, "chat_template_sha256": sha}, indent=2) + "\n")


def trained_format(adapter_dir: Path) -> str | None:
    """The recorded format, or None for an adapter trained before it was recorded."""
    try:
        data = json.loads((Path(adapter_dir) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fmt = data.get("format") if isinstance(data, dict) else None
    return fmt if fmt in FORMATS else None


def agreement(trained: str | None, served: str, served_by: str) -> dict[str, Any]:
    """A ``check`` payload (status, value, detail) comparing the two formats."""
    detail = {"trained": trained, "served": served, "served_by": served_by,
              "formats": {k: FORMATS[k] for k in {trained, served} if k in FORMATS}}
    if trained is None:
        return {"status": "warn", "value": f"{served_by} parses {served}; trained format not "
                                           "recorded", "detail": detail}
    if trained != served:
        return {"status": "fail",
                "value": f"trained on {trained}, but {served_by} parses {served}",
                "detail": detail | {"hint": "Serve with the chat template the model was "
                                            "trained with (the GGUF's own), or retrain with "
                                            "the serving template."}}
    return {"status": "pass", "value": f"{trained}: trained, and parsed by {served_by}",
            "detail": detail}
