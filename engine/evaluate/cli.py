"""``web4tui evaluate``: stage 5 on any source of answers, printed for a person or as JSON.

    python -m engine evaluate [PATHS...] (--run RUN | --adapter DIR | --model DIR
        | --gguf FILE | --ollama NAME | --predictions FILE) [--server URL|auto] [--out DIR]
        [--json] [--config F] [--set k=v ...]

``--server`` asks an OpenAI chat API server instead, as the deployed model's clients ask it
(messages and the run's tools): a URL of a running one, or ``auto`` to start llama-server on
the GGUF (``--gguf``, else the run's exported one).

PATHS default to the config's ``data.eval``. With ``--run`` the run's own config is the base
(``--config``/``--set`` still apply) and results go to ``outputs/<run>/eval/``; otherwise to
``outputs/evaluations/<source>-<time>/`` unless ``--out`` says where. Every evaluation is
appended to ``outputs/eval_history.csv``.

Every model's answers are appended to ``answers.jsonl`` in the results folder as they arrive;
an interrupted evaluation run again (same folder, or the source's unfinished one under
``outputs/evaluations/``) reuses them when the source, settings and records are the same, and
starts over — saying why — when not. Progress goes to stderr: a live line on a terminal, a
plain line every ``eval.progress_every_s`` seconds otherwise.

Exit codes: 0 every target met, 1 a target missed, 2 bad input (files, ids, options).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from engine import call_format, config, runs
from engine.context import StageContext
from engine.evaluate import core, gguf_source, report, sources
from engine.evaluate.lint import LintError
from engine.event_text import ProgressLine, check_line
from engine.models import ModelError


def _server_source(url: str, cfg: dict[str, Any], gguf: str | None, run_dir: Path | None
                   ) -> sources.Source:
    """--server: the tokenizer (for the training rendering and the tool format) comes from
    the GGUF when one is served, else from the run's merged model or the config's model."""
    from engine import models
    from engine.deploy import gguf_meta

    if gguf is None and run_dir is not None:
        exported = run_dir / "gguf" / f"model-{cfg['export']['quant']}.gguf"
        gguf = str(exported) if exported.is_file() else None
    try:
        if gguf is not None:
            tok = gguf_meta.tokenizer(Path(gguf))
        else:
            merged = run_dir / "merged" if run_dir is not None else None
            tok = models.load_tokenizer(merged if merged is not None and merged.is_dir() else
                                        models.resolve(cfg["model"]["id"],
                                                       cfg["model"]["cache_dir"]))
    except gguf_meta.GGUFError as exc:
        raise sources.SourceError(str(exc)) from None
    # answers reach answers.jsonl through the evaluation's kept answers, like every source's
    return sources.ServerSource(url, cfg, tok, gguf=gguf)


def open_source(kind: str, value: str, cfg: dict[str, Any]) -> sources.Source:
    if kind == "predictions":
        return sources.PredictionsSource(value)
    if kind == "gguf":
        return gguf_source.GGUFSource(value, cfg)
    if kind == "ollama":
        return sources.OllamaSource(value, cfg)
    folder = Path(value)
    if not folder.is_dir():
        raise sources.SourceError(f"{folder}: no such folder (--{kind})")
    return sources.open_hf(folder, cfg)


def evaluate_main(paths: list[str], *, source: tuple[str, str] | None, run: str | None,
                  out: str | None, config_file: str | None, sets: list[str],
                  as_json: bool, server: str | None = None) -> int:
    run_dir = None
    own_source = source is not None or server is not None
    if run:
        # the run is found where --config/--set put runs (run.outputs_dir), like every command
        outputs = runs.outputs_dir(config.load(config_file, sets) if config_file or sets
                                   else None)
        run_dir = runs.open_run(run, outputs).root
        cfg = _layer(config.load(run_dir / "config.toml", []), config_file, sets)
        if source is None and server is None:
            adapter = run_dir / "lora"
            if not adapter.is_dir():
                print(f"error: run {run!r} has no adapter at {adapter} yet; train it first "
                      "(stage full) or pass --gguf / --predictions", file=sys.stderr)
                return 2
            source = ("adapter", str(adapter))
    else:
        cfg = config.load(config_file, sets)
    if server is not None:  # the server answers; a --gguf names what it serves
        gguf = source[1] if source is not None and source[0] == "gguf" else None
        if source is not None and gguf is None:
            print(f"error: --server answers itself; drop --{source[0]} (only --gguf goes "
                  "with it: the file to serve)", file=sys.stderr)
            return 2
        source = ("server", server)
    if source is None:
        print("error: say where the answers come from: --run RUN, --adapter DIR, --model DIR, "
              "--gguf FILE, --ollama NAME or --predictions FILE", file=sys.stderr)
        return 2

    records, problems = core.load_records(paths or list(cfg["data"]["eval"]))
    if problems:
        for p in problems[:20]:
            print(f"error: {p}", file=sys.stderr)
        print("fix these lines (web4tui check lists them all) and evaluate again",
              file=sys.stderr)
        return 2
    records = core.select(records, cfg["eval"]["max_per_bucket"])

    outputs = runs.outputs_dir(cfg)
    if out:
        out_dir = Path(out)
    elif run_dir is not None:  # the run's adapter in eval/, another source beside it
        out_dir = run_dir / "eval" / source[0] if own_source else run_dir / "eval"
    else:
        label = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{source[0]}-{Path(source[1]).stem}")[:48]
        out_dir = _unfinished(outputs / "evaluations", label) or \
            outputs / "evaluations" / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"

    answer_fn = None
    try:
        answer_fn = (_server_source(server, cfg, gguf, run_dir)
                     if server is not None else open_source(*source, cfg))
        answer_fn.progress = _progress_printer(cfg["eval"]["progress_every_s"])
        keep = None if source[0] == "predictions" else out_dir
        result = core.evaluate(records, answer_fn, cfg, source=answer_fn.label, keep=keep,
                               note=lambda text: print(text, file=sys.stderr, flush=True))
    except (sources.SourceError, LintError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if answer_fn is not None:
            answer_fn.close()
    written = report.write_all(result, out_dir, cfg, run=run or "",
                               history=outputs / "eval_history.csv")

    events: list[dict[str, Any]] = []
    ctx = StageContext(cfg=cfg, emit=lambda type, **p: events.append({"type": type, **p}))
    report.prove(ctx, result, written)
    trained_dir = Path(source[1]) if source[0] == "adapter" else (
        run_dir / "lora" if run_dir is not None else None)
    renderer = getattr(answer_fn, "renderer", None)
    if trained_dir is not None and renderer is not None:
        ctx.check("eval.tool_format", **call_format.agreement(
            call_format.trained_format(trained_dir), renderer.call_format,
            f"the chat template of {answer_fn.label}"))
    checks = [e for e in events if e["type"] == "check"]
    met = result.all_met(cfg)
    if as_json:
        print(json.dumps({"source": result.source, "metrics": result.metrics,
                          "targets": result.targets(cfg), "checks": checks,
                          "out": str(out_dir), "all_met": met}, indent=2, ensure_ascii=False))
    else:
        print(f"evaluated {len(records)} records from {result.source}")
        for c in checks:
            print(f"  {check_line(c, cfg, 'score')}")
        print(f"wrote {written['markdown']} (why each answer failed), {written['csv']}, "
              f"{written['records']}")
    return 0 if met else 1


def _layer(base: dict[str, Any], config_file: str | None, sets: list[str]) -> dict[str, Any]:
    """The run's config, then --config, then --set (validated like any config)."""
    cfg = base
    if config_file:
        cfg = config._merge(cfg, config.read_file(config_file))
    for s in sets:
        cfg = config._merge(cfg, config.parse_set(s))
    config.validate(cfg, source="--set")
    return cfg


def _unfinished(folder: Path, label: str) -> Path | None:
    """The newest results folder of this source that has answers but no report yet: an
    evaluation that was interrupted, which this one resumes (its answers' key decides)."""
    found = sorted(folder.glob(f"{label}-*/answers.jsonl")) if folder.is_dir() else []
    for answers in reversed(found):
        if not (answers.parent / "summary.json").exists():
            return answers.parent
    return None


def _progress_printer(every_s: float) -> Any:
    """A rewritten line on a terminal; else (a log, a pipe) a plain line at most every
    ``every_s`` seconds, and the last one."""
    line = ProgressLine(tty_every_s=0.5, plain_every_s=every_s)

    def show(done: int, total: int, eta: float | None) -> None:
        eta_txt = f", ETA {eta:.0f}s" if eta is not None else ""
        line.show(f"answering: {done}/{total} records{eta_txt}", last=done >= total)
    return show
