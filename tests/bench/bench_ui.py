"""The app's speed on a long run and under a streaming engine: prints each figure.

    python tests/bench/bench_ui.py [--events 100000] [--stream-s 10]

1. replay: a recorded 100,000-event training run, from launch to a settled screen (headless,
   in this process) — target < 3 s;
2. the real ``web4tui attach`` in tmux at 80x24 while this script streams 20 events/s:
   first frame after launch (< 1.5 s), the UI process's CPU (< 5% of one core) and resident
   memory (< 150 MB), event-written-to-on-screen latency (< 250 ms), key-to-screen latency,
   and idle CPU once the stream stops (~0%).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine import config  # noqa: E402
from engine.protocol import EventWriter  # noqa: E402


def make_run(root: Path, name: str) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.toml").write_text(config.dumps(config.defaults()))
    return run


def record_long_run(run: Path, n_events: int) -> None:
    """A synthetic training run: mostly metrics, with memory, progress, samples, logs."""
    rng = random.Random(1)
    w = EventWriter(run / "events.jsonl", run.name)
    w.emit("hello", stage=None, engine_version="bench", pid=1, backend="torch", device="cuda",
           python="3.11", argv=[])
    w.stage = "full"
    w.emit("stage_started", title="Full fine-tune", total=n_events)
    step = 0
    while w.seq < n_events - 1:
        step += 1
        w.emit("metric", step=step, values={"loss": 0.7 + 2 * math.exp(-step / 5000)
                                            + rng.uniform(-.1, .1), "lr": 2e-4,
                                            "grad_norm": 1.0, "tokens_per_s": 2000.0})
        if step % 5 == 0:
            w.emit("memory", rss_gb=3.0, device_gb=8 + step % 7 / 10, device_peak_gb=9.1,
                   system_used_gb=20.0, system_total_gb=32.0, budget_gb=12.0)
        if step % 10 == 0:
            w.emit("progress", done=step, total=n_events, unit="steps", eta_s=1000.0)
        if step % 50 == 0:
            w.emit("log", level="info", message=f"step {step}: checkpoint written")
        if step % 200 == 0:
            w.emit("sample", step=step, bucket=rng.choice(["tool", "style", "guardrail"]),
                   prompt="p", output='{"tool": "x", "arguments": {}}', verdict="valid_json")
    w.emit("stage_finished", status="ok", duration_s=3600.0, summary={})
    w.close()


def bench_replay(outputs: Path, n_events: int) -> tuple[tuple[float, float], int]:
    from web4tui.app import Web4App
    from web4tui.runfolder import RunFolder
    from web4tui.settings import Settings

    run = make_run(outputs, "bench-replay")
    record_long_run(run, n_events)
    size = (run / "events.jsonl").stat().st_size

    async def go() -> tuple[float, float]:
        t0 = time.perf_counter()
        c0 = time.process_time()
        app = Web4App(RunFolder(run), Settings())
        async with app.run_test(size=(80, 24)) as pilot:
            while True:
                main = app.main
                if main is not None and main.follower.reader.offset >= size \
                        and not main.follower.pending():
                    break
                await asyncio.sleep(0.005)
            await pilot.pause()  # the frame after the last batch
            await app.animator.wait_until_complete()
            elapsed = time.perf_counter() - t0
            assert main.state.stage_status.get("full") == "ok"
            return elapsed, time.process_time() - c0

    return asyncio.run(go()), size


# -- the real app in tmux -------------------------------------------------------------------
def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, predicate, timeout: float = 10.0) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if predicate(screen(session)):
            return time.perf_counter() - t0
        time.sleep(0.005)
    raise TimeoutError(screen(session))


class Streamer(threading.Thread):
    """The fake engine: 20 events/s into events.jsonl, plus marker lines on request."""

    def __init__(self, run: Path, rate: float) -> None:
        super().__init__(daemon=True)
        self.w = EventWriter(run / "events.jsonl", run.name)
        self.rate = rate
        self.markers: queue.Queue[str] = queue.Queue()
        self.written: dict[str, float] = {}
        self.running = threading.Event()
        self.running.set()
        self.stop = False

    def run(self) -> None:
        self.w.emit("hello", stage=None, engine_version="bench", pid=os.getpid(),
                    backend="torch", device="cuda", python="3.11", argv=[])
        self.w.stage = "full"
        self.w.emit("stage_started", title="Full fine-tune", total=100000)
        step = 0
        while not self.stop:
            t = time.perf_counter()
            while not self.markers.empty():
                m = self.markers.get()
                self.written[m] = time.perf_counter()
                self.w.emit("log", level="info", message=m)
            if self.running.is_set():
                step += 1
                kind = step % 4
                if kind == 0:
                    self.w.emit("memory", rss_gb=3.0, device_gb=8.0, device_peak_gb=9.0,
                                system_used_gb=20.0, system_total_gb=32.0, budget_gb=12.0)
                elif kind == 1:
                    self.w.emit("progress", done=step, total=100000, unit="steps", eta_s=900.0)
                else:
                    self.w.emit("metric", step=step, values={
                        "loss": 1 + random.random() / 10, "tokens_per_s": 2000.0})
            time.sleep(max(0.0, 1 / self.rate - (time.perf_counter() - t)))
        self.w.close()


def cpu_over(proc: psutil.Process, seconds: float) -> float:
    c0 = sum(proc.cpu_times()[:2])
    t0 = time.perf_counter()
    time.sleep(seconds)
    return (sum(proc.cpu_times()[:2]) - c0) / (time.perf_counter() - t0) * 100


def bench_live(outputs: Path, stream_s: float, rate: float) -> dict[str, object]:
    run = make_run(outputs, "bench-live")
    (run / "engine.pid").write_text(f"{os.getpid()}\n")  # this script plays the engine
    streamer = Streamer(run, rate)
    streamer.start()
    time.sleep(0.5)
    session = f"bench-ui-{os.getpid()}"
    env = (f"WEB4TUI_OUTPUTS={outputs} XDG_CONFIG_HOME={outputs}/xdg TERM=xterm-256color")
    t0 = time.perf_counter()
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24",
         f"cd {ROOT} && exec env {env} {sys.executable} -m web4tui attach bench-live")
    out: dict[str, object] = {}
    try:
        wait_for(session, lambda s: "web4tui │" in s and "Sanity check" in s)
        out["first_frame_s"] = time.perf_counter() - t0
        proc = psutil.Process(int(tmux("display", "-p", "-t", session, "#{pane_pid}")))
        time.sleep(1.0)
        out["cpu_streaming_pct"] = cpu_over(proc, stream_s)
        out["rss_mb"] = proc.memory_info().rss / 1e6
        lat = []
        for i in range(10):
            marker = f"marker-{i}-{random.randrange(10**6)}"
            streamer.markers.put(marker)
            while marker not in streamer.written:
                time.sleep(0.001)
            wait_for(session, lambda s, m=marker: m in s, timeout=5)
            lat.append(time.perf_counter() - streamer.written[marker])
            time.sleep(0.2)
        out["event_to_screen_ms"] = (statistics.median(lat) * 1000, max(lat) * 1000)
        keys = []
        for _ in range(6):
            shown = "─Log" in screen(session)
            t = time.perf_counter()
            tmux("send-keys", "-t", session, "5")
            wait_for(session, lambda s, was=shown: ("─Log" in s) != was, timeout=5)
            keys.append(time.perf_counter() - t)
        out["key_to_screen_ms"] = (statistics.median(keys) * 1000, max(keys) * 1000)
        streamer.running.clear()
        time.sleep(1.0)
        out["cpu_idle_pct"] = cpu_over(proc, 5.0)
        streamer.w.emit("stage_finished", status="ok", duration_s=1.0, summary={})
        (run / "engine.pid").unlink()  # the engine is done: nothing ticks at all
        time.sleep(1.5)
        out["cpu_idle_done_pct"] = cpu_over(proc, 5.0)
    finally:
        streamer.stop = True
        tmux("kill-session", "-t", session)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--stream-s", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=20.0)
    args = ap.parse_args()
    outputs = Path(tempfile.mkdtemp(prefix="web4tui-bench-"))
    os.environ["WEB4TUI_OUTPUTS"] = str(outputs)
    os.environ["XDG_CONFIG_HOME"] = str(outputs / "xdg")
    try:
        load = os.getloadavg()[0]
        print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at the start "
              "(figures rise with load: other processes share the cores)")
        (replay_s, replay_cpu), size = bench_replay(outputs, args.events)
        print(f"replay of {args.events:,} events ({size / 1e6:.1f} MB) to a settled screen: "
              f"{replay_s:.2f} s wall, {replay_cpu:.2f} s CPU   (target < 3 s)", flush=True)
        if shutil.which("tmux") is None:
            print("tmux not found: the live figures need it")
            return 1
        live = bench_live(outputs, args.stream_s, args.rate)
        print(f"first frame after launch (web4tui attach, tmux 80x24): "
              f"{live['first_frame_s']:.2f} s   (target < 1.5 s)")
        print(f"UI CPU while streaming {args.rate:.0f} events/s over {args.stream_s:.0f} s: "
              f"{live['cpu_streaming_pct']:.1f}% of one core   (target < 5%)")
        print(f"UI resident memory: {live['rss_mb']:.0f} MB   (target < 150 MB)")
        med, worst = live["event_to_screen_ms"]
        print(f"event written -> on screen: median {med:.0f} ms, worst {worst:.0f} ms   "
              "(target < 250 ms)")
        med, worst = live["key_to_screen_ms"]
        print(f"key pressed -> screen updated (toggle a pane, while streaming): "
              f"median {med:.0f} ms, worst {worst:.0f} ms")
        print(f"UI CPU idle (engine alive, no events) over 5 s: {live['cpu_idle_pct']:.1f}% "
              "of one core   (target ~0%)")
        print(f"UI CPU idle (no engine) over 5 s: {live['cpu_idle_done_pct']:.1f}% of one core"
              f"   (load average now {os.getloadavg()[0]:.1f})")
    finally:
        shutil.rmtree(outputs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
