"""Stage 1 speed and memory on a large generated dataset, against the naive loop.

    python tests/bench/bench_check.py [--records 40000] [--data DIR] [--profile]

Prints, measured side by side in this one run (each in a fresh process):
  - the naive loop: json.loads + tokenizer.encode of the rendered prompt and completion,
    record by record (no validation, no statistics — a lower bound on the naive cost);
  - web4tui's stage 1 (check_data: validation, duplicates, token statistics, round-trip,
    samples) on the same files;
  - their ratio, and stage 1's peak memory on a quarter of the data and on all of it
    (streaming: the peak should not grow with the dataset beyond the statistics kept);
  - the CPU seconds each used per wall second (above 1: more than one core working), the CPU
    and the load average (the machine may be shared);
  - with ``--profile``: where stage 1's time goes (the reading thread's functions; the time it
    waits on the tokenizing thread shows as ``acquire``), and the tokenizer alone. cProfile
    inflates functions called very often (the duplicate-key hook runs once per JSON object);
  - with ``--phases``: stage 1's pieces timed one after another without a profiler (wall and
    CPU seconds each): reading, JSON with and without the duplicate-key hook, parsing and
    validating, frames, answers, and the tokenizer on the texts stage 1 actually encodes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NAIVE = r"""
import json, resource, sys, time
from pathlib import Path
from engine import config, models
from engine.records import load_tools, parse_line
from engine.render import Renderer
cfg = config.load(None, [])
tok = models.load_tokenizer(models.resolve(cfg["model"]["id"]))
renderer = Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"]["tools"]))
t0 = time.perf_counter()
tokens = records = 0
for f in sorted(Path(sys.argv[1]).rglob("*.jsonl")):
    with open(f, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            rec, _ = parse_line(str(f), n, line.encode(), "train")
            r = renderer.render(rec)
            tokens += len(tok.encode(r.prompt, add_special_tokens=False))
            tokens += len(tok.encode(r.completion, add_special_tokens=False))
            records += 1
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "records": records, "tokens": tokens, "peak_mb": peak}))
"""

OURS = r"""
import json, os, resource, sys, time
from engine import config
from engine.stages import sanity
from engine.stages.base import StageContext
cfg = config.load(None, [])
ctx = StageContext(cfg=cfg, emit=lambda *a, **k: None)
profile = sys.argv[1] == "--profile"
files = sys.argv[2:] if profile else sys.argv[1:]
if profile:
    import cProfile
    prof = cProfile.Profile()
    prof.enable()
t0, c0 = time.perf_counter(), os.times()
report = sanity.check_data(files, cfg, ctx)
dt, c1 = time.perf_counter() - t0, os.times()
if profile:
    import io, pstats
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(14)
    print(buf.getvalue(), file=sys.stderr)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
train = report.train_tokens().summary()
print(json.dumps({"seconds": dt, "records": train["records"], "tokens": train["total"],
                  "cpu_s": c1.user - c0.user + c1.system - c0.system,
                  "peak_mb": peak, "problems": len(report.problems),
                  "frame_counted_once": report.template.get("frame_counted_once")}))
"""


PHASES = r"""
import json, os, sys, time
from pathlib import Path
from engine import config, models
from engine.records import iter_lines, load_tools, parse_line, read_json_line
from engine.render import Renderer
cfg = config.load(None, [])
tok = models.load_tokenizer(models.resolve(cfg["model"]["id"]))
renderer = Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"]["tools"]))
def clock(name, f):
    t0, c0 = time.perf_counter(), os.times()
    out = f()
    dt, c1 = time.perf_counter() - t0, os.times()
    print(f"  {name:52} {dt:6.2f} s wall {c1.user - c0.user + c1.system - c0.system:6.2f} CPU s",
          file=sys.stderr, flush=True)
    return out
raws = clock("read lines", lambda: [(f, n, raw) for f in sys.argv[1:]
                                    for n, raw in iter_lines(Path(f))])
clock("JSON with the duplicate-key hook", lambda: [read_json_line(r) for _, _, r in raws])
clock("JSON without it (json.loads)", lambda: [json.loads(r) for _, _, r in raws])
recs = clock("parse_line (decode, JSON, fields, tool calls)",
             lambda: [parse_line(f, n, r, "train")[0] for f, n, r in raws])
frames = clock("frame of each record", lambda: [renderer.frame(r) for r in recs])
users = clock("user texts", lambda: [r.user_text for r in recs])
answers = clock("distinct answers, rendered", lambda: list(
    {(r.expect, r.output): renderer.answer(r)[0] for r in recs}.values()))
fast = tok.backend_tokenizer
def encode(texts):
    return sum(len(e) for i in range(0, len(texts), 2048)
               for e in fast.encode_batch_fast(texts[i:i + 2048], add_special_tokens=False))
n = clock("tokenize user texts (batches, every core)", lambda: encode(users))
m = clock("tokenize distinct answers", lambda: encode(answers))
print(f"  encoded: {n / 1e6:.1f}M user tokens, {m / 1e6:.1f}M answer tokens ({len(answers):,} "
      f"distinct answers of {len(recs):,}); {len(set(frames)):,} distinct frames",
      file=sys.stderr)
print(json.dumps({}))
"""


def child(code: str, *args: str, show_stderr: bool = False) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    if show_stderr:
        print(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu_and_load() -> str:
    import os
    import platform
    name = platform.processor() or platform.machine()
    try:
        name = next(line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores, load average " + " ".join(
        f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=40000)
    ap.add_argument("--data", default=str(ROOT / "bench-data" / "large"))
    ap.add_argument("--profile", action="store_true", help="also profile stage 1 (slower)")
    ap.add_argument("--phases", action="store_true",
                    help="also time stage 1's pieces one by one, without a profiler")
    args = ap.parse_args()
    data = Path(args.data)
    stamp = data / f".records-{args.records}"
    if not stamp.exists():
        print(f"generating {args.records:,} records into {data} …", flush=True)
        subprocess.run([sys.executable, str(ROOT / "data" / "generate.py"), "--large",
                        str(args.records), "--out", str(data)], check=True)
        stamp.touch()
    files = sorted(str(p) for p in (data / "train").glob("*.jsonl"))
    size_mb = sum(Path(f).stat().st_size for f in files) / 1e6

    # Warm the model cache and the page cache so neither side pays for them.
    child(OURS, files[0])

    quarter = data / "quarter"
    if not quarter.exists():
        quarter.mkdir()
        for f in files:
            lines = Path(f).read_text(encoding="utf-8").splitlines(keepends=True)
            (quarter / Path(f).name).write_text("".join(lines[: len(lines) // 4]),
                                                encoding="utf-8")

    print(f"before: {_cpu_and_load()}", flush=True)
    naive = child(NAIVE, str(data / "train"))
    ours = child(OURS, *files)
    small = child(OURS, str(quarter))
    print(f"after:  {_cpu_and_load()}", flush=True)

    print(f"\ndataset: {ours['records']:,} records, {ours['tokens'] / 1e6:.1f}M tokens, "
          f"{size_mb:.0f} MB")
    print(f"naive loop (json.loads + tokenizer.encode per record): {naive['seconds']:6.1f} s  "
          f"({naive['tokens'] / naive['seconds'] / 1e3:,.0f}k tokens/s)")
    print(f"web4tui check (all of stage 1):                        {ours['seconds']:6.1f} s  "
          f"({ours['tokens'] / ours['seconds'] / 1e3:,.0f}k tokens/s, "
          f"{ours['cpu_s'] / ours['seconds']:.2f} CPU s per s)")
    print(f"speed-up: {naive['seconds'] / ours['seconds']:.2f}x   (target: >= 2x, <= 30 s)")
    print(f"token counts agree: {naive['tokens'] == ours['tokens']} "
          f"({naive['tokens']:,} vs {ours['tokens']:,})")
    print(f"peak memory: {small['peak_mb']:.0f} MB on {small['records']:,} records, "
          f"{ours['peak_mb']:.0f} MB on {ours['records']:,} records")
    if args.profile:
        print("\nprofile of stage 1 (the reading thread; tokenizing runs on its worker):")
        prof = child(OURS, "--profile", *files, show_stderr=True)
        print(f"profiled run: {prof['seconds']:.1f} s wall, {prof['cpu_s']:.1f} CPU s")
    if args.phases:
        print(f"\nstage 1's pieces one after another ({_cpu_and_load()}):")
        child(PHASES, *files, show_stderr=True)
    return 0


if __name__ == "__main__":
    t = time.time()
    code = main()
    print(f"(benchmark took {time.time() - t:.0f} s)")
    sys.exit(code)
