"""``python -m engine``: the engine's own command line (the UI and `web4tui` call it).

    python -m engine start [STAGES...] [--run NAME] [--config F] [--set k=v ...] [--keep-going]
        prepare the run folder, start a detached worker, print {"run", "path", "pid"} as JSON
    python -m engine work RUN_DIR STAGES...      the worker itself (normally started by start)
    python -m engine config [--config F] [--set k=v ...]   the resolved config as JSON
    python -m engine check [PATHS...] [--json] [--config F] [--set k=v ...]   stage 1 alone
    python -m engine evaluate [PATHS...] (--run RUN | --adapter DIR | --model DIR | --gguf FILE
        | --ollama NAME | --predictions FILE) [--server URL|auto] [--out DIR] [--json]
        [--config F] [--set k=v ...]
    python -m engine export --model DIR [--quant Q] [--out DIR]   stage 6 on any HF folder
    python -m engine deploy --gguf FILE [--name N] [--out DIR]    stage 7 on any GGUF

Exit codes: 0 success, 1 a check failed, 2 bad usage or bad input. The words of every
command are defined once, in :mod:`engine.commands`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine import checklist, commands
from engine.config import ConfigError
from engine.runs import RunError
from engine.training.checkpoint import CheckpointError


def main(argv: list[str] | None = None) -> int:
    from engine.protocol import valid_text

    bad = next((a for a in (sys.argv[1:] if argv is None else argv) if not valid_text(a)), None)
    if bad is not None:
        print(f"error: argument {ascii(bad)} is not valid UTF-8", file=sys.stderr)
        return 2
    args = commands.engine_parser().parse_args(argv)
    try:
        if args.cmd == "start":
            from engine import launch
            stages = args.stages or list(checklist.STAGE_IDS)
            run, _cfg, lock = launch.prepare(args.run, args.config, args.sets, stages)
            try:
                if args.resume:
                    launch.check_resume(run, stages)
                pid = launch.spawn(run, stages, lock=lock, resume=args.resume,
                                   keep_going=args.keep_going)
            finally:
                lock.release()  # a no-op once handed over to the engine
            print(json.dumps({"run": run.name, "path": str(run.root), "pid": pid}))
            return 0
        if args.cmd == "config":
            from engine import config
            print(json.dumps(config.load(args.config, args.sets)))
            return 0
        if args.cmd == "work":
            from engine.worker import work as do_work
            return do_work(Path(args.run_dir), args.stages, resume=args.resume,
                           detach_output=not args.no_detach_output, lock_fd=args.lock_fd,
                           keep_going=args.keep_going)
        if args.cmd == "check":
            from engine.check_cli import check_main
            return check_main(args.paths, args.config, args.sets, as_json=args.json)
        if args.cmd == "evaluate":
            from engine.evaluate.cli import evaluate_main
            return evaluate_main(args.paths, source=commands.source_of(args), run=args.run, out=args.out,
                                 config_file=args.config, sets=args.sets, as_json=args.json,
                                 server=args.server)
        if args.cmd == "export":
            from engine.export_cli import export_main
            return export_main(args.model, args.quant, args.out, args.config, args.sets)
        if args.cmd == "deploy":
            from engine.deploy_cli import deploy_main
            return deploy_main(args.gguf, args.name, args.out, args.config, args.sets)
    except (ConfigError, RunError, CheckpointError) as exc:
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
