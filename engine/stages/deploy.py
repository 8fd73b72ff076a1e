"""Stage 7 — deploy: a Modelfile for the quantized GGUF, the model in Ollama, a smoke test.

The Modelfile is always written (``outputs/<run>/Modelfile``) and proved: its TEMPLATE
renders probe conversations exactly as the model's chat template does. Creating the model
and the smoke test need an Ollama server; when none answers they are ``skip`` with the two
commands to run by hand — never ``pass``. Docker Desktop Models is optional: the command is
always shown, and run when docker has Model Runner support.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from engine.deploy import modelfile as mf
from engine.deploy import ollama_client as oc
from engine.export import prompts
from engine.records import load_tools
from engine.runs import atomic_write
from engine.stages.base import StageContext, skip_stage

SMOKE_FALLBACK = "Deploy checkout-api v1.2.3 to staging."


def training_seq_len(cfg: dict[str, Any]) -> int:
    return max(int(cfg.get(s, {}).get("seq_len", 0)) for s in ("dry_run", "mini", "full"))


def smoke_prompt(cfg: dict[str, Any]) -> str:
    """The user text of the first held-out tool record (what the model was trained to call)."""
    tool_recs = sorted((r for r in prompts.eval_records(cfg) if r.expect == "tool"),
                       key=lambda r: r.id)
    return tool_recs[0].user_text if tool_recs else SMOKE_FALLBACK


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
    name = cfg["deploy"]["name"]
    num_ctx = cfg["deploy"]["num_ctx"] or training_seq_len(cfg)
    bake = cfg["deploy"]["bake_tools"]
    modelfile_path = run_dir / "Modelfile"

    # --- the Modelfile ---------------------------------------------------------------------
    try:
        rend = prompts.renderer(merged, cfg)
        spec = mf.build_spec(gguf, rend, merged, bake_tools=bake, num_ctx=num_ctx)
        mismatches = mf.verify_template(spec, rend, bake)
        text = mf.render_modelfile(spec, run_dir, header=(
            f"Modelfile for run {run_dir.name}, written by web4tui.\n"
            f"Create the model: ollama create {name} -f {modelfile_path.resolve()}"))
    except mf.ModelfileError as exc:
        ctx.check("deploy.modelfile", "fail", detail=str(exc))
        for item in ("deploy.create", "deploy.smoke", "deploy.docker"):
            ctx.check(item, "skip", detail="no valid Modelfile")
        return ctx.status_from_checks()
    atomic_write(modelfile_path, text)
    ctx.emit("artifact", kind="modelfile", path=str(modelfile_path))
    seq = training_seq_len(cfg)
    problems = list(mismatches)
    if num_ctx < seq:
        problems.append({"num_ctx": num_ctx, "training_seq_len": seq})
    ctx.check("deploy.modelfile", "fail" if problems else "pass",
              value=(f"{spec.family} template identical to the chat template on "
                     f"{len(spec.probes)} probe chats; stops {', '.join(spec.stops)}; "
                     f"num_ctx {num_ctx}"),
              detail={"path": str(modelfile_path), "family": spec.family, "stops": spec.stops,
                      "num_ctx": num_ctx, "training_seq_len": seq, "tools_in_system": bake,
                      "mismatches": problems, "modelfile": text})
    ctx.raise_if_stopped()

    # --- Ollama ----------------------------------------------------------------------------
    prompt = smoke_prompt(cfg)
    by_hand = [f"ollama create {name} -f {modelfile_path.resolve()}",
               f"ollama run {name} {_shell_quote(prompt)}"]
    try:
        oc.validate_name(name)
    except oc.ModelNameError as exc:
        ctx.check("deploy.create", "fail", detail=str(exc))
        ctx.check("deploy.smoke", "skip", detail="the model was not created")
    else:
        _ollama(ctx, name, spec, prompt, by_hand)
    _docker(ctx, spec, name, num_ctx)
    return ctx.status_from_checks()


def _shell_quote(text: str) -> str:
    """For display only (the commands shown to a person); nothing here is ever executed."""
    import shlex

    return shlex.quote(text)


def _ollama(ctx: StageContext, name: str, spec: mf.ModelSpec, prompt: str,
            by_hand: list[str]) -> None:
    cfg = ctx.cfg
    host = oc.host(cfg)
    client = oc.client(cfg)
    ok, why = oc.reachable(client)
    if not ok:
        detail = (f"no Ollama server answers at {host} ({why}); run by hand:\n  "
                  + "\n  ".join(by_hand))
        ctx.check("deploy.create", "skip", value=f"no Ollama at {host}", detail=detail)
        ctx.check("deploy.smoke", "skip", value="not run", detail=detail)
        ctx.emit("log", level="info", message="no Ollama server: run by hand:\n  "
                 + "\n  ".join(by_hand))
        return
    t0 = time.monotonic()
    try:
        oc.create(client, name, spec,
                  lambda s: ctx.emit("progress", done=0, total=None, unit="ollama",
                                     eta_s=None, message=s))
        kept = oc.stored(client, name)
    except Exception as exc:
        ctx.check("deploy.create", "fail", detail=f"{type(exc).__name__}: {exc}")
        ctx.check("deploy.smoke", "skip", detail="the model was not created")
        return
    template_ok = kept["template"] == spec.template
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
        result = oc.smoke(client, name, prompt, max_tokens=cfg["deploy"]["smoke_max_tokens"],
                          stops=spec.stops, tools=tools)
    except Exception as exc:
        ctx.check("deploy.smoke", "fail", detail=f"{type(exc).__name__}: {exc}")
        return
    ctx.emit("sample", step=None, bucket="tool", prompt=prompt, output=result.content,
             verdict="pass" if result.ok else result.why)
    ctx.check("deploy.smoke", "pass" if result.ok else "fail",
              value=("valid tool JSON, stopped" if result.ok else result.why),
              detail={"prompt": prompt, "answer": result.content,
                      "done_reason": result.done_reason})


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
