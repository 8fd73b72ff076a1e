"""``python -m engine``: the engine's own command line (the UI and `web4tui` call it).

    python -m engine start [STAGES...] [--run NAME] [--config F] [--set k=v ...] [--keep-going]
        prepare the run folder, start a detached worker, print {"run", "path", "pid"} as JSON
    python -m engine work RUN_DIR STAGES...      the worker itself (normally started by start)
    python -m engine config [--config F] [--set k=v ...]   the resolved config as JSON
    python -m engine check [PATHS...] [--json] [--config F] [--set k=v ...]   stage 1 alone
    python -m engine evaluate [PATHS...] (--run RUN | --adapter DIR | --model DIR | --gguf FILE
        | --ollama NAME | --predictions FILE) [--out DIR] [--json] [--config F] [--set k=v ...]
    python -m engine export --model DIR [--quant Q] [--out DIR]   stage 6 on any HF folder

Exit codes: 0 success, 1 a check failed, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine import checklist
from engine.config import ConfigError
from engine.runs import RunError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine")
    sub = parser.add_subparsers(dest="cmd", required=True)

    start = sub.add_parser("start", help="prepare a run and start a detached engine on it")
    start.add_argument("stages", nargs="*")
    start.add_argument("--run")
    start.add_argument("--config")
    start.add_argument("--set", action="append", default=[], dest="sets")
    start.add_argument("--resume", action="store_true",
                       help="continue training stages from their last checkpoint")
    start.add_argument("--keep-going", action="store_true",
                       help="run every stage even when the ones it needs are not proved")

    work = sub.add_parser("work", help="work on a prepared run (foreground)")
    work.add_argument("run_dir")
    work.add_argument("stages", nargs="+")
    work.add_argument("--keep-going", action="store_true")
    work.add_argument("--resume", action="store_true")
    work.add_argument("--no-detach-output", action="store_true",
                      help="keep stdout/stderr (for debugging)")

    check = sub.add_parser("check", help="stage 1 on files or folders")
    check.add_argument("paths", nargs="*")
    check.add_argument("--json", action="store_true")
    check.add_argument("--config")
    check.add_argument("--set", action="append", default=[], dest="sets")

    ev = sub.add_parser("evaluate", help="stage 5 on a run, an adapter, a model, a GGUF, "
                                         "an Ollama model or a predictions file")
    ev.add_argument("paths", nargs="*")
    ev.add_argument("--run")
    src = ev.add_mutually_exclusive_group()
    for flag in ("adapter", "model", "gguf", "ollama", "predictions"):
        src.add_argument(f"--{flag}")
    ev.add_argument("--out")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--config")
    ev.add_argument("--set", action="append", default=[], dest="sets")
    export = sub.add_parser("export", help="stage 6 on any HF folder without a run")
    export.add_argument("--model", required=True, help="HF folder, .gguf, hub id or 'default'")
    export.add_argument("--quant", choices=["q4_k_m", "q5_k_m", "q8_0"])
    export.add_argument("--out", help="folder for the GGUF files (default outputs/exports/NAME)")
    export.add_argument("--config")
    export.add_argument("--set", action="append", default=[], dest="sets")

    resolve = sub.add_parser("config", help="print the resolved config as JSON (the app "
                                            "shows what the next run will use)")
    resolve.add_argument("--config")
    resolve.add_argument("--set", action="append", default=[], dest="sets")

    args = parser.parse_args(argv)
    try:
        if args.cmd == "start":
            from engine import launch
            stages = args.stages or list(checklist.STAGE_IDS)
            run, _cfg = launch.prepare(args.run, args.config, args.sets, stages)
            pid = launch.spawn(run, stages, resume=args.resume, keep_going=args.keep_going)
            print(json.dumps({"run": run.name, "path": str(run.root), "pid": pid}))
            return 0
        if args.cmd == "config":
            from engine import config
            print(json.dumps(config.load(args.config, args.sets)))
            return 0
        if args.cmd == "work":
            from engine.worker import work as do_work
            return do_work(Path(args.run_dir), args.stages, resume=args.resume,
                           detach_output=not args.no_detach_output,
                           keep_going=args.keep_going)
        if args.cmd == "check":
            from engine.check_cli import check_main
            return check_main(args.paths, args.config, args.sets, as_json=args.json)
        if args.cmd == "evaluate":
            from engine.evaluate.cli import evaluate_main
            source = next(((f, getattr(args, f)) for f in
                           ("adapter", "model", "gguf", "ollama", "predictions")
                           if getattr(args, f)), None)
            return evaluate_main(args.paths, source=source, run=args.run, out=args.out,
                                 config_file=args.config, sets=args.sets, as_json=args.json)
        if args.cmd == "export":
            from engine.export.cli import export_main
            return export_main(args.model, args.quant, args.out, args.config, args.sets)
    except (ConfigError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (NotADirectoryError, FileExistsError, PermissionError) as exc:
        # An unusable outputs folder (a file in its place, no permission): a user mistake.
        print(f"error: cannot use {exc.filename}: {exc.strerror}; point run.outputs_dir (or "
              "WEB4TUI_OUTPUTS) at a folder you can write to", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # launch.LaunchError: the engine did not come up
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
