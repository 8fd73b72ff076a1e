"""The words of every command, defined once: ``web4tui`` and ``python -m engine`` parse with it.

A command that runs in the engine (check, evaluate, export --model, deploy --gguf) is parsed by
``web4tui`` for its help and its usage errors, then handed to ``python -m engine`` with the
very words the user typed (``args.words``), which the engine parses with the same definition:
no flag is spelled twice, none re-encoded. Stdlib-only, so the UI side may import it.

Exit codes of every command: 0 success, 1 a check failed, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine import checklist

QUANTS = ("q4_k_m", "q5_k_m", "q8_0")
#: Where stage 5's answers may come from (one of them, or --server).
SOURCES = ("adapter", "model", "gguf", "ollama", "predictions")


class _Command(argparse.ArgumentParser):
    """A sub-command's parser that keeps the words it was given (``args.words``), so a
    command can be handed on to the engine exactly as typed."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        ns, extra = super().parse_known_args(args, namespace)
        ns.words = list(args or [])
        return ns, extra


def _config_options(p: argparse.ArgumentParser, dest: str = "", config_help: str | None = None,
                    set_help: str | None = None) -> None:
    p.add_argument("--config", dest=f"{dest}config", metavar="F",
                   help=config_help or "a TOML file overriding the defaults")
    p.add_argument("--set", action="append", default=[], dest=f"{dest}sets", metavar="KEY=VALUE",
                   help=set_help or "override one setting, e.g. --set lora.r=16 (repeatable)")


def _app_options(p: argparse.ArgumentParser, also: str = "") -> None:
    """--config/--set for the app: what the next run started from it will use (and where its
    runs are: ``run.outputs_dir``)."""
    _config_options(
        p, "app_",
        "a TOML file overriding the defaults for runs started from the app"
        + (f" ({also})" if also else ""),
        "override one setting for runs started from the app, e.g. --set data.train=/my/data "
        "(repeatable)")


def _where_runs_are(p: argparse.ArgumentParser) -> None:
    _config_options(p, config_help="a TOML file whose run.outputs_dir says where the runs are",
                    set_help="e.g. --set run.outputs_dir=/big/disk/runs (repeatable)")


def _start_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("stages", nargs="*", metavar="STAGE",
                   help=f"stages to run (default: all): {', '.join(checklist.STAGE_IDS)}")
    p.add_argument("--run", help="run name (letters, digits, . _ -); default: run-<time>")
    _config_options(p)
    p.add_argument("--resume", action="store_true",
                   help="continue training stages from their last checkpoint")
    p.add_argument("--keep-going", action="store_true",
                   help="run every stage asked for, even when a stage it needs did not pass "
                        "(by default a failed stage blocks the ones after it)")


def _check(sub: Any) -> None:
    c = sub.add_parser("check", help="stage 1 (sanity check) on files or folders")
    c.add_argument("paths", nargs="*", metavar="PATH",
                   help="JSONL files or folders (default: data.train and data.eval)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    _config_options(c)


def _evaluate(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="stage 5 on a run, an adapter, a GGUF or predictions")
    e.add_argument("paths", nargs="*", metavar="PATH",
                   help="eval JSONL files or folders (default: data.eval)")
    e.add_argument("--run", help="the run's adapter, config and eval folder (with another "
                                 "source: that run's config and folder)")
    src = e.add_mutually_exclusive_group()
    src.add_argument("--adapter", help="a PEFT (or MLX) adapter folder")
    src.add_argument("--model", help="a merged Hugging Face model folder")
    src.add_argument("--gguf", help="a GGUF file (llama.cpp)")
    src.add_argument("--ollama", metavar="NAME", help="a model served by Ollama")
    src.add_argument("--predictions", help='JSONL of {"id": ..., "answer": ...}')
    e.add_argument("--server", metavar="URL|auto",
                   help="ask an OpenAI chat API server with the tools (auto: llama-server on "
                        "--gguf or the run's GGUF)")
    e.add_argument("--out", help="folder for the results (default: the run's eval/)")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    _config_options(e)


def _stage_on_a_file(sub: Any, name: str, help: str, *, on_a_run: bool, source: str,
                     source_help: str, out_help: str) -> argparse.ArgumentParser:
    """export and deploy: the stage on a run (``web4tui``), or on a file or folder given
    with ``source`` and no run (both; the engine does only that)."""
    p = sub.add_parser(name, help=help + ("" if on_a_run else f" (on --{source}, without a run)"))
    if on_a_run:
        p.add_argument("run", nargs="?", help=f"the run to {name} (default: the newest)")
    p.add_argument(f"--{source}", required=not on_a_run, help=source_help)
    p.add_argument("--out", help=out_help)
    _config_options(p)
    return p


def _export(sub: Any, *, on_a_run: bool) -> None:
    x = _stage_on_a_file(sub, "export", "stage 6: merge, GGUF, quantize", on_a_run=on_a_run,
                         source="model",
                         source_help="an HF folder, hub id or 'default', exported without a run",
                         out_help="with --model: folder for the GGUF files "
                                  "(default outputs/exports/NAME)")
    x.add_argument("--quant", choices=QUANTS)


def _deploy(sub: Any, *, on_a_run: bool) -> None:
    d = _stage_on_a_file(sub, "deploy", "stage 7: Modelfile, Ollama and a smoke test",
                         on_a_run=on_a_run, source="gguf",
                         source_help="deploy a GGUF file you have, without a run",
                         out_help="with --gguf: folder for the Modelfile "
                                  "(default outputs/deployments/NAME)")
    d.add_argument("--name", help="the model's name in Ollama (deploy.name)")


def _stage_commands(sub: Any, *, on_a_run: bool) -> None:
    """The commands both parsers share: what ``web4tui`` hands to the engine as typed."""
    _check(sub)
    _evaluate(sub)
    _export(sub, on_a_run=on_a_run)
    _deploy(sub, on_a_run=on_a_run)


def web4tui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="web4tui",
        description="From JSONL records to a fine-tuned, evaluated, quantized coder model in "
                    "Ollama. Without a command: the app on the default config.")
    _app_options(p)
    sub = p.add_subparsers(dest="cmd", parser_class=_Command)

    a = sub.add_parser("attach", help="the app on an existing run (default: the newest)")
    a.add_argument("run", nargs="?")
    _app_options(a, also="on top of the run's own config")

    r = sub.add_parser("run", help="run stages headless, printing plain progress lines")
    _start_options(r)
    r.add_argument("--detach", action="store_true",
                   help="start the engine and return; follow it later with attach")

    _stage_commands(sub, on_a_run=True)

    _where_runs_are(sub.add_parser("runs", help="list runs with their status"))
    s = sub.add_parser("stop", help="stop a run gracefully (it saves a checkpoint)")
    s.add_argument("run", nargs="?")
    _where_runs_are(s)
    return p


def engine_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine",
                                description="The engine's own command line (the app and "
                                            "`web4tui` call it).")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Command)

    start = sub.add_parser("start", help="prepare a run, start a detached engine on it and "
                                         'print {"run", "path", "pid"} as JSON')
    _start_options(start)

    work = sub.add_parser("work", help="work on a prepared run (foreground; normally started "
                                       "by start)")
    work.add_argument("run_dir")
    work.add_argument("stages", nargs="+")
    work.add_argument("--keep-going", action="store_true")
    work.add_argument("--resume", action="store_true")
    work.add_argument("--lock-fd", type=int, help="the run's lock, taken by `start`")
    work.add_argument("--no-detach-output", action="store_true",
                      help="keep stdout/stderr (for debugging)")

    _stage_commands(sub, on_a_run=False)

    resolve = sub.add_parser("config", help="print the resolved config as JSON (the app "
                                            "shows what the next run will use)")
    _config_options(resolve)
    return p


def source_of(args: argparse.Namespace) -> tuple[str, str] | None:
    """``evaluate``'s answer source as (kind, value), from whichever flag was given."""
    return next(((f, getattr(args, f)) for f in SOURCES if getattr(args, f)), None)
