"""Talking to Ollama through its own Python client (``ollama``), and to Docker Model Runner.

Only documented API calls: ``list`` (is the server there), ``create_blob`` + ``create`` (the
model from the GGUF with template, system and parameters — the same values the Modelfile
holds), ``show`` (what the server stored), ``chat`` (the smoke test). The server is the
config's ``deploy.ollama_host``, else ``$OLLAMA_HOST``, else Ollama's default address.

Model names are checked against Ollama's rules before anything is sent. Commands are argument
lists, never shell strings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.deploy.modelfile import ModelSpec

DEFAULT_HOST = "http://127.0.0.1:11434"
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,79}$")
_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}$")


class ModelNameError(ValueError):
    """A model name Ollama would refuse; the message gives the rule."""


def validate_name(name: str) -> str:
    """``[host/][namespace/]model[:tag]`` with Ollama's characters and lengths."""
    rule = ("Ollama model names are [host/][namespace/]model[:tag]: letters, digits, '_', "
            "'-' and '.', starting with a letter, digit or '_', each part at most 80 "
            "characters (namespace without '.'), e.g. web4-coder or me/web4-coder:q4")
    if not name or any(c.isspace() for c in name):
        raise ModelNameError(f"model name {name!r} is not allowed. {rule}")
    parts = name.split("/")
    model, colon, tag = parts[-1].partition(":")
    if colon and (":" in tag or not _PART.match(tag)):
        raise ModelNameError(f"model name {name!r}: bad tag {tag!r}. {rule}")
    parts[-1] = model
    if len(parts) > 3 or not _PART.match(model) or model in (".", ".."):
        raise ModelNameError(f"model name {name!r} is not allowed. {rule}")
    if len(parts) >= 2 and not _NAMESPACE.match(parts[-2]):
        raise ModelNameError(f"model name {name!r}: bad namespace {parts[-2]!r}. {rule}")
    if len(parts) == 3 and not _HOST.match(parts[0]):
        raise ModelNameError(f"model name {name!r}: bad host {parts[0]!r}. {rule}")
    return name


def host(cfg: dict[str, Any]) -> str:
    return cfg["deploy"]["ollama_host"] or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST


def client(cfg: dict[str, Any]) -> Any:
    import ollama

    return ollama.Client(host=host(cfg), timeout=cfg["deploy"]["timeout_s"])


def reachable(c: Any) -> tuple[bool, str]:
    """(server answers, why not) — a list call is the cheapest documented request."""
    try:
        c.list()
        return True, ""
    except Exception as exc:  # ConnectionError, httpx timeouts, HTTP errors
        return False, f"{type(exc).__name__}: {exc}"


def create(c: Any, name: str, spec: ModelSpec, progress: Callable[[str], None]) -> list[str]:
    """Upload the GGUF as a blob and create the model; returns the server's status lines."""
    progress(f"uploading {spec.gguf.name} ({spec.gguf.stat().st_size / 1e6:.1f} MB)")
    digest = c.create_blob(spec.gguf)
    statuses = []
    # No template on the native path: Ollama then serves the GGUF's own chat template.
    for part in c.create(model=name, files={spec.gguf.name: digest},
                         template=spec.template or None, system=spec.system or None,
                         parameters=spec.parameters, stream=True):
        status = getattr(part, "status", None) or ""
        statuses.append(status)
        progress(status)
    if not statuses or statuses[-1] != "success":
        raise RuntimeError(f"ollama create did not report success: {statuses[-3:]}")
    return statuses


def stored(c: Any, name: str) -> dict[str, Any]:
    """What the server keeps for the model (template, system, parameters)."""
    r = c.show(name)
    extra = getattr(r, "model_extra", None) or {}  # the client's model has no `system` field
    return {"template": getattr(r, "template", None),
            "system": getattr(r, "system", None) or extra.get("system"),
            "parameters": getattr(r, "parameters", None)}


def smoke(c: Any, name: str, rec: Any, *, tools: list[dict[str, Any]],
          max_tokens: int) -> Any:
    """One held-out record through Ollama's chat API with the run's tools, judged like the
    llama-server smoke (:mod:`engine.deploy.server_smoke`)."""
    import time

    from engine import toolcalls
    from engine.deploy.server_smoke import Answer, judge, openai_tools

    t0 = time.monotonic()
    r = c.chat(model=name, messages=[{"role": "user", "content": rec.user_text}],
               tools=openai_tools(tools), stream=False,
               options={"temperature": 0, "top_k": 1, "seed": 0, "num_predict": max_tokens})
    raw = [{"function": {"name": tc.function.name, "arguments": dict(tc.function.arguments)}}
           for tc in (r.message.tool_calls or [])]
    calls = [{"name": t.name, "arguments": t.arguments}
             for t in (toolcalls.read_calls(raw) if raw else [])]
    ans = Answer(rec.id, rec.expect, None, r.message.content or "", calls,
                 getattr(r, "done_reason", None) or "", time.monotonic() - t0)
    judge(ans, rec)
    return ans


# --- Docker Desktop Models ----------------------------------------------------------------

def docker_command(gguf: Path, name: str, num_ctx: int) -> list[str]:
    ref = name.lower() if "/" in name else f"web4tui/{name.lower()}"
    return ["docker", "model", "package", "--gguf", str(gguf.resolve()), "--context-size",
            str(num_ctx), ref]


def docker_models_available() -> tuple[bool, str]:
    exe = shutil.which("docker")
    if not exe:
        return False, "docker is not installed"
    try:
        proc = subprocess.run([exe, "model", "version"], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"docker model did not answer ({exc})"
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        return False, "docker has no Model Runner here" + (f" ({msg[0]})" if msg else "")
    return True, proc.stdout.strip()
