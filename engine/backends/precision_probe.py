"""Which number format is fast on this machine: what the hardware says, then what it does.

- CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later do bf16 in hardware), else fp16.
- CPU: the instruction-set flags (``amx_bf16``/``avx512_bf16`` in /proc/cpuinfo on Linux,
  ``hw.optional.arm.FEAT_BF16`` on macOS). Without them bf16 is emulated and slower than
  fp32, so fp32 it is. With them — or when the flags cannot be read — a short timed matmul
  (bf16 vs fp32) decides: flags promise an instruction, not a faster kernel for it (an AVX-512
  BF16 CPU whose bf16 path is slower than its fp32 one exists), and where the two disagree
  the measurement wins.
- MPS: bf16 needs macOS 14; where it exists, a timed matmul decides between bf16 and fp16.

A measurement is cached per machine (CPU model, flags, torch version, threads) in the model
cache, so only the first run on a machine pays its ~1 s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: CPU flags that mean bf16 matmuls run in hardware.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
PROBE_SIZE = 1024  # large enough to be compute-bound, small enough for ~0.1 s per format
PROBE_SECONDS = 0.25


def cpu_flags() -> tuple[str, set[str]] | None:
    """(CPU model, its bf16-related flags), or None where they cannot be read."""
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
        model, flags = "", set()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "CPU part") and not model:
                model = value.strip()
            elif key in ("flags", "Features"):
                flags = set(value.split())
                break
        if not flags:
            return None
        named = {f for f in flags if f in BF16_FLAGS or f == "bf16"}  # bf16: arm64 Linux
        return model, named
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16",
                                  "machdep.cpu.brand_string"], capture_output=True, text=True,
                                 check=False,
                                 timeout=5).stdout.split("\n")
        except (OSError, subprocess.SubprocessError):
            return None
        if not out or not out[0].strip().isdigit():
            return None
        return (out[1].strip() if len(out) > 1 else platform.machine(),
                {"FEAT_BF16"} if out[0].strip() == "1" else set())
    return None


def matmul_rate(device: str, dtype: Any, size: int = PROBE_SIZE,
                seconds: float = PROBE_SECONDS) -> float:
    """GFLOP/s of a square matmul in ``dtype`` on ``device`` (best of short timed runs)."""
    import torch

    sync = {"mps": getattr(torch.mps, "synchronize", lambda: None),
            "cuda": torch.cuda.synchronize}.get(device, lambda: None)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    for _ in range(2):  # first calls pick kernels and fault pages in
        a @ b
    sync()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == 0.0:
        t = time.perf_counter()
        a @ b
        sync()
        best = max(best, 2 * size ** 3 / max(time.perf_counter() - t, 1e-9) / 1e9)
    return best


def _cache_file(cfg: dict[str, Any]) -> Path:
    from engine.models import cache_root
    return cache_root(cfg["model"]["cache_dir"]) / "precision-probe.json"


def measured(device: str, fast: str, slow: str, machine: str, cfg: dict[str, Any]
             ) -> tuple[float, float]:
    """(GFLOP/s in ``fast``, in ``slow``) on this machine, from the cache or measured now."""
    import torch

    key = hashlib.sha256(json.dumps([device, fast, slow, machine, torch.__version__,
                                     torch.get_num_threads()]).encode()).hexdigest()[:16]
    path = _cache_file(cfg)
    try:
        cached = json.loads(path.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        cached = None
    if isinstance(cached, list) and len(cached) == 2:
        return float(cached[0]), float(cached[1])
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    rates = (matmul_rate(device, dtypes[fast]), matmul_rate(device, dtypes[slow]))
    try:
        from engine.runs import atomic_write
        try:
            table = json.loads(path.read_text())
            table = table if isinstance(table, dict) else {}
        except (OSError, ValueError):
            table = {}
        table[key] = [round(rates[0], 1), round(rates[1], 1)]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(table, indent=1) + "\n")
    except OSError as exc:  # a read-only cache costs a second of probing next time, no more
        log.warning("could not cache the precision probe in %s: %s", path, exc)
    return rates


def _by_measure(device: str, fast: str, slow: str, machine: str, said: str,
                cfg: dict[str, Any]) -> tuple[str, str]:
    rate_fast, rate_slow = measured(device, fast, slow, machine, cfg)
    ratio = rate_fast / rate_slow if rate_slow else float("inf")
    need = float(cfg["train"]["precision_min_speedup"])
    pick = fast if ratio >= need else slow
    verdict = "faster" if pick == fast else f"not {need:g}x faster"
    return pick, (f"{said}; measured {fast} matmul {rate_fast:.0f} vs {slow} {rate_slow:.0f} "
                  f"GFLOP/s ({ratio:.2f}x, {verdict})")


def choose(device: str, cfg: dict[str, Any]) -> tuple[str, str]:
    """("bf16" | "fp16" | "fp32", why) for ``train.precision = "auto"`` on ``device``."""
    import torch

    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"CUDA {torch.cuda.get_device_name()} supports bf16"
        return "fp16", f"CUDA {torch.cuda.get_device_name()} without bf16"
    if device == "mps":
        macos14 = hasattr(torch.backends.mps, "is_macos_or_newer") and \
            torch.backends.mps.is_macos_or_newer(14, 0)
        if not macos14:
            return "fp16", "MPS before macOS 14 has no bf16"
        return _by_measure("mps", "bf16", "fp16", platform.platform(), "MPS on macOS 14+", cfg)
    found = cpu_flags()
    if found is not None and not found[1]:
        return "fp32", (f"CPU {found[0] or platform.machine()} has no bf16 instructions "
                        "(bf16 would be emulated, slower than fp32)")
    if found is None:
        machine, said = platform.processor() or platform.machine(), "CPU flags unreadable"
    else:
        machine, said = f"{found[0]} {sorted(found[1])}", \
            f"CPU {found[0]} has {', '.join(sorted(found[1]))}"
    return _by_measure("cpu", "bf16", "fp32", f"{machine} {os.cpu_count()}", said, cfg)
