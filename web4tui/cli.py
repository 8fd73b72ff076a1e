"""The ``web4tui`` command line (DESIGN §7). Stable: tests and scripts rely on it.

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
import time
from typing import Any

from engine import checklist
from engine.protocol import Event, printable, valid_text
from web4tui import engine_client
from web4tui.charts import fmt_duration
from web4tui.follow import Follower
from web4tui.glyphs import glyph, stage_state, word
from web4tui.runfolder import RunFolder, find_run, list_runs



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="web4tui",
        description="From JSONL records to a fine-tuned, evaluated, quantized coder model in "
                    "Ollama. Without a command: the app on the default config.")
    _overrides(p, dest="app")
    sub = p.add_subparsers(dest="cmd")

    a = sub.add_parser("attach", help="the app on an existing run (default: the newest)")
    a.add_argument("run", nargs="?")
    _overrides(a, dest="app", also="on top of the run's own config")

    r = sub.add_parser("run", help="run stages headless, printing plain progress lines")
    r.add_argument("stages", nargs="*", metavar="STAGE",
                   help=f"stages to run (default: all): {', '.join(checklist.STAGE_IDS)}")
    r.add_argument("--config", help="a TOML file overriding the defaults")
    r.add_argument("--run", help="run name (letters, digits, . _ -); default: run-<time>")
    r.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
                   help="override one setting, e.g. --set lora.r=16 (repeatable)")
    r.add_argument("--resume", action="store_true",
                   help="continue training stages from their last checkpoint")
    r.add_argument("--detach", action="store_true",
                   help="start the engine and return; follow it later with attach")
    r.add_argument("--keep-going", action="store_true",
                   help="run every stage asked for, even when a stage it needs did not pass "
                        "(by default a failed stage blocks the ones after it)")

    c = sub.add_parser("check", help="stage 1 (sanity check) on files or folders")
    c.add_argument("paths", nargs="*", metavar="PATH",
                   help="JSONL files or folders (default: data.train and data.eval)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--config")
    c.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE")

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
    e.add_argument("--config")
    e.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE")

    x = sub.add_parser("export", help="stage 6: merge, GGUF, quantize")
    x.add_argument("run", nargs="?")
    x.add_argument("--model")
    x.add_argument("--quant", choices=["q4_k_m", "q5_k_m", "q8_0"])
    x.add_argument("--out", help="with --model: folder for the GGUF files")
    x.add_argument("--config")
    x.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE")

    d = sub.add_parser("deploy", help="stage 7: Modelfile, Ollama and a smoke test")
    d.add_argument("run", nargs="?")
    d.add_argument("--name")
    d.add_argument("--gguf", help="deploy a GGUF file you have, without a run")

    sub.add_parser("runs", help="list runs with their status")
    s = sub.add_parser("stop", help="stop a run gracefully (it saves a checkpoint)")
    s.add_argument("run", nargs="?")
    return p


def _overrides(p: argparse.ArgumentParser, dest: str, also: str = "") -> None:
    """--config/--set for the app: what the next run started from it will use."""
    p.add_argument("--config", dest=f"{dest}_config", metavar="F",
                   help="a TOML file overriding the defaults for runs started from the app"
                        + (f" ({also})" if also else ""))
    p.add_argument("--set", action="append", default=[], dest=f"{dest}_sets",
                   metavar="KEY=VALUE",
                   help="override one setting for runs started from the app, e.g. "
                        "--set data.train=/my/data (repeatable)")


def main(argv: list[str] | None = None) -> int:
    bad = next((a for a in (sys.argv[1:] if argv is None else argv) if not valid_text(a)), None)
    if bad is not None:  # a byte sequence the terminal could not decode (surrogate-escaped)
        print(f"error: argument {ascii(bad)} is not valid UTF-8", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        if args.cmd is None:
            return _app(None, args.app_config, args.app_sets)
        if args.cmd == "attach":
            return _app(find_run(args.run), args.app_config, args.app_sets)
        if args.cmd == "run":
            return cmd_run(args)
        if args.cmd == "check":
            return cmd_check(args)
        if args.cmd == "evaluate":
            return cmd_evaluate(args)
        if args.cmd == "runs":
            return cmd_runs()
        if args.cmd == "stop":
            return cmd_stop(args.run)
        if args.cmd == "export":
            return cmd_export(args)
        if args.cmd == "deploy":
            return cmd_deploy(args)
        build_parser().print_help()
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


def cmd_check(args: argparse.Namespace) -> int:
    cmd = engine_client.engine_cmd("check", *args.paths)
    if args.json:
        cmd.append("--json")
    if args.config:
        cmd += ["--config", args.config]
    for s in args.sets:
        cmd += ["--set", s]
    return subprocess.call(cmd)


def cmd_evaluate(args: argparse.Namespace) -> int:
    cmd = engine_client.engine_cmd("evaluate", *args.paths)
    for flag in ("run", "adapter", "model", "gguf", "ollama", "predictions", "server", "out",
                 "config"):
        if getattr(args, flag):
            cmd += [f"--{flag}", getattr(args, flag)]
    if args.json:
        cmd.append("--json")
    for s in args.sets:
        cmd += ["--set", s]
    return subprocess.call(cmd)


def cmd_export(args: argparse.Namespace) -> int:
    """Stage 6 on a run (the newest by default), or on any HF folder with --model."""
    if args.model:
        cmd = engine_client.engine_cmd("export", "--model", args.model)
        for flag in ("quant", "out", "config"):
            if getattr(args, flag):
                cmd += [f"--{flag}", getattr(args, flag)]
        for s in args.sets:
            cmd += ["--set", s]
        return subprocess.call(cmd)
    sets = [f"export.quant={args.quant}"] if args.quant else []
    return _stage_on_run(find_run(args.run).name, "export", sets + list(args.sets))


def cmd_deploy(args: argparse.Namespace) -> int:
    """Stage 7 on a run (the newest by default), or on any GGUF with --gguf."""
    if args.gguf:
        cmd = engine_client.engine_cmd("deploy", "--gguf", args.gguf)
        if args.name:
            cmd += ["--name", args.name]
        return subprocess.call(cmd)
    sets = [f"deploy.name={json.dumps(args.name)}"] if args.name else []
    return _stage_on_run(find_run(args.run).name, "deploy", sets)


def _stage_on_run(run_name: str, stage: str, sets: list[str]) -> int:
    started = engine_client.start([stage], run=run_name, sets=sets)
    print(f"run {started.run}: engine pid {started.pid}, folder {started.path}", flush=True)
    return follow_headless(RunFolder(started.path), started.pid, [stage])


def cmd_runs() -> int:
    runs = list_runs()
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


def cmd_stop(name: str | None) -> int:
    run = find_run(name)
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
    if args.resume and not args.run:
        from web4tui.runfolder import find_run
        args.run = find_run(None).name  # resume the newest run unless told which
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

    old = signal.signal(signal.SIGINT, on_interrupt)
    try:
        for ev in follower.follow(lambda: run.pid() is None and not _alive(pid)):
            printer.show(ev)
    finally:
        signal.signal(signal.SIGINT, old)
    missing = [s for s in stages if s not in follower.finished]
    if missing:
        print(f"the engine ended without finishing {', '.join(missing)}; last lines of "
              f"{run.log}:\n{run.log_tail()}", file=sys.stderr)
        return 1
    blocked = [s for s, st in follower.finished.items() if s in stages and st == "blocked"]
    bad = {s: st for s, st in follower.finished.items()
           if s in stages and st not in ("ok", "blocked")}
    unproved = [i for i, st in printer.checks.items() if st == "skip"
                and i in checklist.ITEMS and not checklist.ITEMS[i].optional
                and i.split(".")[0] in stages]
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
        with open(run.events, "rb") as fh:
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


class LinePrinter:
    """One readable line per meaningful event; progress at most every few seconds."""

    def __init__(self, cfg: dict[str, Any] | None = None, progress_every_s: float = 2.0) -> None:
        self.cfg = cfg
        self.checks: dict[str, str] = {}  # item -> latest status
        self.every = progress_every_s
        self.last_progress = 0.0
        self.pending_start: str | None = None

    def show(self, ev: Event) -> None:
        tag = f"[{ev.stage}]" if ev.stage else "[engine]"
        line = None
        if self.pending_start:
            if not (ev.type == "stage_finished" and ev.get("status") == "blocked"):
                print(self.pending_start, flush=True)
            self.pending_start = None
        if ev.type == "hello":
            line = (f"{tag} engine {ev.get('engine_version')} on {ev.get('backend')}/"
                    f"{ev.get('device')} ({ev.get('backend_reason', '')})")
        elif ev.type == "stage_started":
            for item in [i for i in self.checks if i.startswith(f"{ev.stage}.")]:
                del self.checks[item]  # a stage run again is judged on its new items only
            # Said with the stage's first event: a blocked stage prints one line, not two.
            self.pending_start = f"{tag} started — {ev.get('title')}"
            return
        elif ev.type == "progress":
            now = time.monotonic()
            if now - self.last_progress >= self.every:
                self.last_progress = now
                eta, done, total = ev.get("eta_s"), ev.get("done"), ev.get("total")
                # An ETA of 0 while work remains says nothing: shown only when it counts.
                counts = isinstance(eta, (int, float)) and eta >= 1 and done != total
                line = (f"{tag} {done}/{total} {ev.get('unit')}"
                        + (f", ETA {fmt_duration(eta)}" if counts else ""))
        elif ev.type == "check":
            self.checks[str(ev.get("item"))] = str(ev.get("status"))
            item = checklist.ITEMS.get(ev.get("item"))
            title = checklist.render(item.title, self.cfg) if item else ev.get("item")
            value = ev.get("value")
            detail = ev.get("detail") if ev.get("status") == "skip" else None
            line = (f"{tag} {glyph(str(ev.get('status')))} {ev.get('status')} {title}"
                    + (f" — {value}" if value else "") + (f" ({detail})" if detail else ""))
        elif ev.type == "metric":
            vals = ev.get("values") or {}
            line = f"{tag} step {ev.get('step')} " + " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in vals.items())
        elif ev.type == "sample":
            out = str(ev.get("output", "")).replace("\n", " ")
            line = (f"{tag} sample @{ev.get('step')} [{ev.get('bucket')}] {ev.get('verdict')}: "
                    f"{out[:100]}{'…' if len(out) > 100 else ''}")
        elif ev.type == "log" and ev.get("level") in ("warning", "error", "info"):
            line = f"{tag} {ev.get('level')}: {ev.get('message')}"
        elif ev.type == "error":
            line = f"{tag} ERROR {ev.get('message')}" + (
                f"\n{tag}   hint: {ev.get('hint')}" if ev.get("hint") else "")
        elif ev.type == "advice":
            line = f"{tag} advice: {ev.get('symptom')} → {ev.get('action')}"
        elif ev.type == "artifact":
            line = f"{tag} wrote {ev.get('kind')}: {ev.get('path')}"
        elif ev.type == "stage_finished" and ev.get("status") == "blocked":
            summary = ev.get("summary") or {}
            reason = summary.get("reason", "needs an earlier stage")
            line = f"{tag} {glyph('blocked')} blocked — {reason}"
        elif ev.type == "stage_finished":
            state = stage_state(str(ev.get("status")), [
                st for i, st in self.checks.items() if i.startswith(f"{ev.stage}.")])
            line = (f"{tag} {glyph(state)} {word(state)} in {ev.get('duration_s', 0):.1f}s")
        if line:
            print(printable(line), flush=True)


if __name__ == "__main__":
    sys.exit(main())
