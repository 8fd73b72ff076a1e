"""The house linter (ruff with ``data/ruff.toml``) over answers' code, many at once.

A house configuration that is missing is a warning, not a failure: answers are then linted
with ruff's own defaults, so an export or evaluation run outside the project still works.

Starting ruff costs more than linting one snippet, so :meth:`Linter.prime` lints every code
snippet of an evaluation in one ruff process (files in a temporary folder) and later calls are
served from the cache; a snippet not primed is linted on its own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_warned: set[str] = set()  # a missing configuration is said once per process, not per linter


class LintError(RuntimeError):
    """ruff is missing or could not run; the message says what to do."""


def ruff_binary() -> str:
    try:
        from ruff.__main__ import find_ruff_bin  # the pip package ships the binary
        return os.fspath(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        pass
    near = Path(sys.executable).with_name("ruff")
    if near.exists():
        return str(near)
    found = shutil.which("ruff")
    if not found:
        raise LintError("ruff is not installed: `pip install ruff` (the style bucket is linted "
                        "with it)")
    return found


class Linter:
    """``linter(code)`` → ruff findings ``[{code, message, line}]`` under one configuration."""

    def __init__(self, config_path: str | os.PathLike[str] | None) -> None:
        self.config = Path(config_path) if config_path else None
        if self.config is not None and not self.config.is_file():
            if str(self.config) not in _warned:
                _warned.add(str(self.config))
                log.warning("%s: ruff configuration not found (eval.ruff_config); style answers "
                            "are linted with ruff's defaults", self.config)
            self.config = None
        self.binary = ruff_binary()
        self.cache: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, code: str) -> list[dict[str, Any]]:
        if code not in self.cache:
            self.prime([code])
        return self.cache[code]

    def prime(self, codes: list[str]) -> None:
        todo = sorted({c for c in codes if c not in self.cache})
        if not todo:
            return
        with tempfile.TemporaryDirectory(prefix="web4tui-lint-") as tmp:
            names = {}
            for i, code in enumerate(todo):
                name = f"answer_{i:05d}.py"
                (Path(tmp) / name).write_text(code, encoding="utf-8")
                names[name] = code
                self.cache[code] = []
            cmd = [self.binary, "check", "--no-cache", "--output-format", "json", "--quiet",
                   "--exit-zero"]
            if self.config is not None:
                cmd += ["--config", str(self.config.resolve())]
            proc = subprocess.run(cmd + ["."], cwd=tmp, capture_output=True, text=True,
                                  check=False)
            if proc.returncode != 0:
                raise LintError(f"ruff failed: {proc.stderr.strip()[:500]}")
            for f in json.loads(proc.stdout or "[]"):
                code = names.get(Path(f["filename"]).name)
                if code is not None:
                    self.cache[code].append({"code": f.get("code") or "E999",
                                             "message": f.get("message", ""),
                                             "line": (f.get("location") or {}).get("row")})
