"""Memory as the training process sees it: its RSS, the device, the system, the budget.

Read inside the training process (never from outside), so the figures are the trainer's own.
The budget defaults to the seed's 12 GB on a 32 GB machine, scaled to this machine's RAM.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import psutil

GB = 1024 ** 3


@dataclass
class MemorySample:
    rss_gb: float
    device_gb: float
    device_peak_gb: float
    system_used_gb: float
    system_total_gb: float
    budget_gb: float

    def payload(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.__dict__.items()}

    @property
    def used_gb(self) -> float:
        """What counts against the budget: the process, or the device if that is larger
        (MPS/CUDA memory may not show in RSS)."""
        return max(self.rss_gb, self.device_gb)


def budget_gb(cfg: dict[str, Any]) -> float:
    m = cfg["memory"]
    if m["budget_gb"] > 0:
        return float(m["budget_gb"])
    return psutil.virtual_memory().total / GB * m["budget_fraction"]


def hard_limit_gb(cfg: dict[str, Any]) -> float:
    """Where the stage stops itself, before the OS would kill it."""
    total = psutil.virtual_memory().total / GB
    return min(budget_gb(cfg) * cfg["memory"]["hard_factor"],
               total * cfg["memory"]["system_fraction_limit"])


class MemoryMonitor:
    def __init__(self, cfg: dict[str, Any], device_reader: Callable[[], tuple[float, float]]
                 | None = None) -> None:
        self.budget = budget_gb(cfg)
        self.hard = hard_limit_gb(cfg)
        self.proc = psutil.Process(os.getpid())
        self.device_reader = device_reader or (lambda: (0.0, 0.0))
        self.peak_used = 0.0

    def sample(self) -> MemorySample:
        vm = psutil.virtual_memory()
        dev, dev_peak = self.device_reader()
        s = MemorySample(rss_gb=self.proc.memory_info().rss / GB, device_gb=dev,
                         device_peak_gb=dev_peak, system_used_gb=(vm.total - vm.available) / GB,
                         system_total_gb=vm.total / GB, budget_gb=self.budget)
        self.peak_used = max(self.peak_used, s.used_gb)
        return s

    def over_hard_limit(self, s: MemorySample) -> bool:
        return s.used_gb > self.hard
