"""The ``web4tui`` command line. Stable: tests and scripts rely on it.

The words of every command are :mod:`engine.commands`'s; the commands that run in the engine
(check, evaluate, export --model, deploy --gguf) are handed to ``python -m engine`` as typed.
Events are printed by :mod:`engine.event_text`, like every command's.

Exit codes: 0 success, 1 a check failed, 2 bad usage or bad input. User mistakes get one clear
message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine import checklist, commands
from engine.event_text import LinePrinter
from engine.protocol import printable, valid_text
from web4tui import engine_client
from web4tui.follow import Follower
from web4tui.glyphs import glyph, word
from web4tui.runfolder import RunFolder, find_run, list_runs, outputs_dir


def main(argv: list[str] | None = None) -> int:
    bad = next((a for a in (sys.argv[1:] if argv is None else argv) if not valid_text(a)), None)
    if bad is not None:  # a byte sequence the terminal could not decode (surrogate-escaped)
        print(f"error: argument {ascii(bad)} is not valid UTF-8", file=sys.stderr)
        return 2
    args = commands.web4tui_parser().parse_args(argv)
    try:
        if args.cmd is None:
            return _app(None, args.app_config, args.app_sets)
        if args.cmd == "attach":
            return _app(find_run(args.run, _runs_in(args.app_config, args.app_sets)),
                        args.app_config, args.app_sets)
        if args.cmd == "run":
            return cmd_run(args)
        if args.cmd in ("check", "evaluate"):
            return _in_engine(args)
        if args.cmd == "runs":
            return cmd_runs(_runs_in(args.config, args.sets))
        if args.cmd == "stop":
            return cmd_stop(find_run(args.run, _runs_in(args.config, args.sets)))
        if args.cmd == "export":
            return cmd_export(args)
        if args.cmd == "deploy":
            return cmd_deploy(args)
        commands.web4tui_parser().print_help()
        return 2
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    except engine_client.EngineError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return exc.code if exc.code in (1, 2) else 1
    except KeyboardInterrupt:
        return 130


def _app(run: RunFolder | None, config: str | None, sets: list[str]) -> int:
    from web4tui.app import Web4App  # Textual loads only for the app
    from web4tui.next_run import NextRun

    next_run = NextRun(config, list(sets))
    if next_run.overridden:
        next_run.resolve(run)  # a bad --set or --config stops here: exit 2, one clear line
    message = Web4App(run=run, next_run=next_run).run()
    if message:
        print(message)
    return 0


def _in_engine(args: argparse.Namespace) -> int:
    """A command the engine runs, handed on with the very words the user typed."""
    return subprocess.call(engine_client.engine_cmd(args.cmd, *args.words))


def _runs_in(config: str | None, sets: list[str]) -> Path:
    """Where the runs are: ``WEB4TUI_OUTPUTS``, else the ``run.outputs_dir`` that --config and
    --set give (resolved by the engine, like a run's own config), else the default."""
    if os.environ.get("WEB4TUI_OUTPUTS") or not (config or sets):
        return outputs_dir()
    return outputs_dir(engine_client.resolve_config(config, sets))


def cmd_export(args: argparse.Namespace) -> int:
    """Stage 6 on a run (the newest by default), or on any HF folder with --model."""
    if args.model:
        return _in_engine(args)
    return _stage_on_run(args, "export", [f"export.quant={args.quant}"] if args.quant else [])


def cmd_deploy(args: argparse.Namespace) -> int:
    """Stage 7 on a run (the newest by default), or on any GGUF with --gguf."""
    if args.gguf:
        return _in_engine(args)
    return _stage_on_run(args, "deploy",
                         [f"deploy.name={json.dumps(args.name)}"] if args.name else [])


def _stage_on_run(args: argparse.Namespace, stage: str, sets: list[str]) -> int:
    """One stage on the run named (the newest by default), with the command's settings on
    top of the run's own config."""
    run = find_run(args.run, _runs_in(None, args.sets))
    started = engine_client.start([stage], run=run.name, sets=sets + list(args.sets))
    print(f"run {started.run}: engine pid {started.pid}, folder {started.path}", flush=True)
    return follow_headless(RunFolder(started.path), started.pid, [stage])


def cmd_runs(root: Path) -> int:
    runs = list_runs(root)
    if not runs:
        print("no runs yet — start one with `web4tui run` or the app")
        return 0
    from web4tui.run_summary import summarize

    print(f"{'run':<32} {'status':<22} {'stages ok':<10} updated")
    for r in runs:
        s = summarize(r)
        print(f"{r.name:<32} {glyph(s.status)} {word(s.status):<20} "
              f"{s.passed}/{len(checklist.STAGE_IDS):<8} {s.updated}")
    return 0


def cmd_stop(run: RunFolder) -> int:
    pid = run.stop()
    if pid is None:
        print(f"run {run.name} has no engine running")
        return 0
    print(f"asked engine pid {pid} to stop run {run.name}; it finishes the current step, "
          "saves a checkpoint and ends the stage as cancelled")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    stages = args.stages or list(checklist.STAGE_IDS)
    for s in stages:
        if s not in checklist.STAGE_IDS:
            print(f"error: unknown stage {s!r}; stages are: {', '.join(checklist.STAGE_IDS)}",
                  file=sys.stderr)
            return 2
    if args.resume and not args.run:  # resume the newest run unless told which
        args.run = find_run(None, _runs_in(args.config, args.sets)).name
    started = engine_client.start(stages, run=args.run, config=args.config, sets=args.sets,
                                  resume=args.resume, keep_going=args.keep_going)
    run = RunFolder(started.path)
    print(f"run {started.run}: engine pid {started.pid}, folder {started.path}", flush=True)
    if args.detach:
        print(f"detached — follow it with `web4tui attach {started.run}`, "
              f"stop it with `web4tui stop {started.run}`")
        return 0
    return follow_headless(run, started.pid, stages)


def follow_headless(run: RunFolder, pid: int, stages: list[str]) -> int:
    """Plain progress lines until the engine ends; Ctrl-C asks it to stop gracefully."""
    follower = Follower(run)
    follower.reader.offset = _offset_of_hello(run, pid)
    printer = LinePrinter(_run_config(run))

    def on_interrupt(signum: int, frame: Any) -> None:
        print("\nstopping: the engine finishes its current step and saves", flush=True)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    unproved: list[str] = []  # required items the engine says a stage skipped
    old = signal.signal(signal.SIGINT, on_interrupt)
    try:
        for ev in follower.follow(lambda: run.pid() is None and not _alive(pid)):
            printer.show(ev)
            if ev.type == "stage_finished" and ev.stage in stages:
                summary = ev.get("summary")
                unproved += (summary.get("unproved") or []) if isinstance(summary, dict) else []
    finally:
        signal.signal(signal.SIGINT, old)
    missing = [s for s in stages if s not in follower.finished]
    if missing:
        print(f"the engine ended without finishing {', '.join(missing)}; last lines of "
              f"{run.log_path}:\n{run.log_tail()}", file=sys.stderr)
        return 1
    blocked = [s for s, st in follower.finished.items() if s in stages and st == "blocked"]
    bad = {s: st for s, st in follower.finished.items()
           if s in stages and st not in ("ok", "blocked")}
    if bad or unproved or blocked:
        if bad:
            print("not passed: " + ", ".join(f"{s} ({st})" for s, st in bad.items()))
        if blocked:
            print("blocked (not started): " + ", ".join(blocked)
                  + "; fix what blocks them, or run with --keep-going")
        if unproved:
            print("not proved (skipped): " + ", ".join(unproved))
        return 1
    print("all stages passed")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # reap our own child if it is one (the engine was started by a subprocess, usually not)
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _offset_of_hello(run: RunFolder, pid: int) -> int:
    """Byte offset of this engine's hello, so a continued run doesn't replay old stages."""
    from engine.protocol import decode

    offset = 0
    try:
        with open(run.events_path, "rb") as fh:
            for raw in fh:
                ev = decode(raw)
                if ev is not None and ev.type == "hello" and ev.get("pid") == pid:
                    return offset
                offset += len(raw)
    except FileNotFoundError:
        pass
    return 0


def _run_config(run: RunFolder) -> dict[str, Any] | None:
    import tomllib
    try:
        return tomllib.loads((run.root / "config.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


if __name__ == "__main__":
    sys.exit(main())
