"""Stage 7 — deploy: a Modelfile for the quantized GGUF, the model in Ollama, a smoke test.

The Modelfile is always written (``outputs/<run>/Modelfile``) for the path Ollama will take
with the model (native, or its own Go TEMPLATE — see :mod:`engine.deploy.modelfile`) and
proved. Creating the model needs an Ollama server; when none answers it is ``skip`` with the
commands to run by hand — never ``pass``. The smoke test runs on that Ollama when it answers,
else on llama-server — the engine Ollama serves every GGUF with — started here on the
exported GGUF with the Modelfile's settings and stopped afterwards whatever happens. The item
says which server proved it. Docker Desktop Models is optional: the command is always shown,
and run when docker has Model Runner support.

:func:`deploy_model` is the stage on any GGUF (``web4tui deploy --gguf`` uses it too).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from engine import call_format, toolcalls
from engine.deploy import llama_server as ls
from engine.deploy import modelfile as mf
from engine.deploy import ollama_client as oc
from engine.deploy import server_smoke
from engine.export import prompts
from engine.records import Record, load_tools
from engine.render import Renderer
from engine.runs import atomic_write
from engine.stages.base import StageContext, skip_stage


def training_seq_len(cfg: dict[str, Any]) -> int:
    return max(int(cfg.get(s, {}).get("seq_len", 0)) for s in ("dry_run", "mini", "full"))


def smoke_records(cfg: dict[str, Any]) -> list[Record]:
    """The held-out records the smoke test asks: the first tool record (what the model was
    trained to call) and the shortest tool_neg record (an answer without a call, quickly)."""
    recs = prompts.eval_records(cfg)
    # Plain records before mixed ones (a mixed record's conversation is a harder prompt).
    tool = sorted((r for r in recs if r.expect == "tool"),
                  key=lambda r: (r.bucket != "tool", r.id))[:1]
    neg = sorted((r for r in recs if r.expect == "tool_neg"),
                 key=lambda r: (r.bucket != "tool_neg", len(r.output), r.id))[:1]
    return tool + neg


def run(ctx: StageContext) -> str:
    if ctx.run_dir is None:
        return skip_stage(ctx, "deploy", "no run folder")
    cfg = ctx.cfg
    run_dir = Path(ctx.run_dir)
    quant = cfg["export"]["quant"]
    gguf = run_dir / "gguf" / f"model-{quant}.gguf"
    merged = run_dir / "merged"
    if not gguf.is_file() or not (merged / "config.json").is_file():
        return skip_stage(ctx, "deploy", f"no {quant.upper()} GGUF in {gguf.parent}: export the "
                                         "run first (web4tui export)")
    return deploy_model(ctx, gguf, prompts.renderer(merged, cfg), merged, run_dir,
                        f"run {run_dir.name}")


def deploy_model(ctx: StageContext, gguf: Path, rend: Renderer, model_dir: Path | None,
                 out_dir: Path, label: str) -> str:
    """The Modelfile in ``out_dir``, the model in Ollama, the smoke test — for any GGUF."""
    cfg = ctx.cfg
    name = cfg["deploy"]["name"]
    num_ctx = cfg["deploy"]["num_ctx"] or training_seq_len(cfg)
    bake = cfg["deploy"]["bake_tools"]
    modelfile_path = out_dir / "Modelfile"

    # --- the Modelfile ---------------------------------------------------------------------
    try:
        spec = mf.build_spec(gguf, rend, model_dir, bake_tools=bake, num_ctx=num_ctx)
        mismatches = mf.verify_template(spec, rend, bake)
        text = mf.render_modelfile(spec, out_dir, header=(
            f"Modelfile for {label}, written by web4tui.\n"
            f"Ollama path: {spec.path}.\n"
            f"Create the model: ollama create {name} -f {modelfile_path.resolve()}"))
    except mf.ModelfileError as exc:
        ctx.check("deploy.modelfile", "fail", detail=str(exc))
        for item in ("deploy.create", "deploy.smoke", "deploy.docker"):
            ctx.check(item, "skip", detail="no valid Modelfile")
        return ctx.status_from_checks()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(modelfile_path, text)
    ctx.emit("artifact", kind="modelfile", path=str(modelfile_path))
    seq = training_seq_len(cfg)
    problems = list(mismatches)
    if num_ctx < seq:
        problems.append({"num_ctx": num_ctx, "training_seq_len": seq})
    proved = ("the GGUF carries the training chat template" if spec.native else
              f"TEMPLATE identical to the chat template on {len(spec.probes) - 1} probe chats, "
              f"tool calls after {spec.tool_tag!r}")
    stops = ", ".join(spec.stops) or f"none needed (the vocabulary ends on {', '.join(spec.vocab_stops) or 'its eos'})"
    ctx.check("deploy.modelfile", "fail" if problems else "pass",
              value=f"{spec.path} path: {proved}; stops {stops}; num_ctx {num_ctx}",
              detail={"path": str(modelfile_path), "ollama_path": spec.path, "why": spec.why,
                      "family": spec.family, "tool_format": spec.tool_format,
                      "stops": spec.stops, "vocabulary_stops": spec.vocab_stops,
                      "num_ctx": num_ctx, "training_seq_len": seq,
                      "tools_in_system": bake and not spec.native, "probes": spec.probes,
                      "mismatches": problems, "modelfile": text})
    served, by = ((toolcalls.template_format(spec.gguf_template),
                   "the GGUF's chat template (llama.cpp's parser)") if spec.native else
                  (spec.tool_format, "the Modelfile's TEMPLATE (Ollama's parser)"))
    adapter = out_dir / "lora"
    ctx.check("deploy.tool_format", **call_format.agreement(
        call_format.trained_format(adapter) if adapter.is_dir() else None, served, by))
    ctx.raise_if_stopped()

    # --- Ollama, else llama-server ---------------------------------------------------------
    records = smoke_records(cfg)
    first = records[0].user_text if records else "Deploy checkout-api v1.2.3 to staging."
    by_hand = [f"ollama create {name} -f {modelfile_path.resolve()}",
               f"ollama run {name} {_shell_quote(first)}"]
    try:
        oc.validate_name(name)
    except oc.ModelNameError as exc:
        ctx.check("deploy.create", "fail", detail=str(exc))
        ctx.check("deploy.smoke", "skip", detail="the model was not created")
    else:
        if not _ollama(ctx, name, spec, rend, records, by_hand):
            _server_smoke(ctx, spec, rend, records, by_hand)
    _docker(ctx, spec, name, num_ctx)
    return ctx.status_from_checks()


def _shell_quote(text: str) -> str:
    """For display only (the commands shown to a person); nothing here is ever executed."""
    import shlex

    return shlex.quote(text)


def _ollama(ctx: StageContext, name: str, spec: mf.ModelSpec, rend: Renderer,
            records: list[Record], by_hand: list[str]) -> bool:
    """Create and smoke-test on Ollama; False when no Ollama answers (nothing was checked)."""
    cfg = ctx.cfg
    host = oc.host(cfg)
    client = oc.client(cfg)
    ok, why = oc.reachable(client)
    if not ok:
        ctx.check("deploy.create", "skip", value=f"no Ollama at {host}",
                  detail=f"no Ollama server answers at {host} ({why}); run by hand:\n  "
                         + "\n  ".join(by_hand))
        return False
    t0 = time.monotonic()
    try:
        oc.create(client, name, spec,
                  lambda s: ctx.emit("progress", done=0, total=None, unit="ollama",
                                     eta_s=None, message=s))
        kept = oc.stored(client, name)
    except Exception as exc:
        ctx.check("deploy.create", "fail", detail=f"{type(exc).__name__}: {exc}")
        ctx.check("deploy.smoke", "skip", detail="the model was not created")
        return True
    template_ok = (kept["template"] or "") == spec.template or spec.native
    # Servers that do not report the system prompt are not held against the model.
    system_ok = kept["system"] is None or kept["system"] == spec.system
    ctx.check("deploy.create", "pass" if template_ok and system_ok else "fail",
              value=f"created {name} on {host} in {time.monotonic() - t0:.1f} s",
              detail={"host": host, "stored_template_matches": template_ok,
                      "stored_system_matches": system_ok if kept["system"] is not None
                      else "not reported", "parameters": kept["parameters"]})
    ctx.raise_if_stopped()
    tools = load_tools(cfg["data"].get("tools"))
    try:
        answers = [oc.smoke(client, name, rec, tools=rend.tools_for(rec) or tools,
                            max_tokens=cfg["deploy"]["smoke_max_tokens"]) for rec in records]
    except Exception as exc:
        ctx.check("deploy.smoke", "fail", detail=f"Ollama at {host}: {type(exc).__name__}: {exc}")
        return True
    _smoke_verdict(ctx, f"Ollama at {host}", spec, answers, {})
    return True


def _server_smoke(ctx: StageContext, spec: mf.ModelSpec, rend: Renderer,
                  records: list[Record], by_hand: list[str]) -> None:
    cfg, dep = ctx.cfg, ctx.cfg["deploy"]
    if not records:
        ctx.check("deploy.smoke", "skip", value="no held-out tool record",
                  detail="the eval files hold no tool record to compare an answer with")
        return
    try:
        binary = ls.find_binary(dep["llama_server"])
    except ls.ServerError as exc:
        ctx.check("deploy.smoke", "skip", value="no Ollama, no llama-server",
                  detail=f"{exc}; or run by hand:\n  " + "\n  ".join(by_hand))
        return
    tools = load_tools(cfg["data"].get("tools"))
    ctx.emit("log", level="info", message=f"no Ollama server: smoke test on {binary}")
    t0 = time.monotonic()
    try:
        with ls.LlamaServer(binary, spec.gguf, num_ctx=spec.num_ctx,
                            threads=dep["server_threads"],
                            startup_timeout_s=dep["server_start_timeout_s"],
                            request_timeout_s=dep["timeout_s"]) as server:
            answers = []
            for rec in records:
                ctx.raise_if_stopped()
                answers.append(server_smoke.ask(server, spec, rend, rec, tools,
                                                dep["smoke_max_tokens"]))
            figures = {"startup_s": round(server.startup_s or 0.0, 2),
                       "smoke_s": round(time.monotonic() - t0, 2)}
    except ls.ServerError as exc:
        ctx.check("deploy.smoke", "fail", value="llama-server failed", detail=str(exc))
        return
    _smoke_verdict(ctx, f"llama-server ({binary})", spec, answers, figures)


def _smoke_verdict(ctx: StageContext, server: str, spec: mf.ModelSpec,
                   answers: list[server_smoke.Answer], figures: dict[str, float]) -> None:
    for a in answers:
        ctx.emit("sample", step=None, bucket=a.expect, prompt=a.record_id,
                 output=a.content or str(a.calls), verdict="pass" if a.ok else a.verdict)
    bad = [a for a in answers if not a.ok]
    calls = [c["name"] for a in answers for c in a.calls]
    value = (f"{server.split(' (')[0]}, {spec.path} path: " + (
        f"tool_calls {', '.join(calls)} read as the reference, no call for tool_neg, "
        "every answer stopped" if not bad else "; ".join(f"{a.record_id}: {a.verdict}"
                                                          for a in bad)))
    ctx.check("deploy.smoke", "fail" if bad else "pass", value=value,
              detail={"server": server, "ollama_path": spec.path, **figures,
                      "answers": [a.__dict__ for a in answers]})


def _docker(ctx: StageContext, spec: mf.ModelSpec, name: str, num_ctx: int) -> None:
    cmd = oc.docker_command(spec.gguf, name, num_ctx)
    shown = " ".join(cmd)
    if not ctx.cfg["deploy"]["docker"]:
        ctx.check("deploy.docker", "skip", value=shown, detail="deploy.docker is off")
        return
    available, why = oc.docker_models_available()
    if not available:
        ctx.check("deploy.docker", "skip", value=shown,
                  detail=f"{why}; with Docker Desktop Models run: {shown}")
        return
    proc = subprocess.run(cmd, capture_output=True, text=True)
    ctx.check("deploy.docker", "pass" if proc.returncode == 0 else "fail", value=shown,
              detail=(proc.stdout + proc.stderr)[-2000:])
