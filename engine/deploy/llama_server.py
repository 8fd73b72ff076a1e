"""llama.cpp's llama-server — the engine Ollama runs every GGUF on — started for one job.

``with LlamaServer(binary, gguf, num_ctx=...) as server:`` starts it on 127.0.0.1 on a free
port (Ollama's own flags: ``-c <num_ctx> --no-webui``, one slot; Jinja is on by default),
waits until ``/health`` says the model is loaded, and on leaving stops it whatever happened:
the server runs in its own process group and the whole group is terminated, then killed.

Requests go through :meth:`LlamaServer.post`; a server that dies while answering raises a
:class:`ServerError` that says so (exit code and the last lines of its log), not a bare
connection error.

The binary is found by :func:`find_binary`: ``$WEB4TUI_LLAMA_SERVER``, else the config's
``deploy.llama_server``, else the one ``make setup`` built (linked into the venv's bin,
kept under ~/.cache/web4tui/llama-server/), else ``llama-server`` on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Any

ENV_BINARY = "WEB4TUI_LLAMA_SERVER"
CACHE = Path.home() / ".cache" / "web4tui" / "llama-server"
HOW_TO_BUILD = "`make setup` builds it (about 7 minutes once)"


class ServerError(RuntimeError):
    """llama-server could not be found, started, or did not answer; the message says why."""


def find_binary(configured: str = "") -> Path:
    """The llama-server to run, or a :class:`ServerError` naming every place looked at."""
    looked: list[str] = []
    for value, what in ((os.environ.get(ENV_BINARY, ""), f"${ENV_BINARY}"),
                        (configured, "deploy.llama_server")):
        if value:
            path = Path(value).expanduser()
            if path.is_file() and os.access(path, os.X_OK):
                return path
            raise ServerError(f"{what} is {value!r}, which is not an executable file")
    candidates = [Path(sys.prefix) / "bin" / "llama-server"]
    # Newest build first: the cache holds one folder per llama.cpp pin and build flags.
    candidates += sorted(CACHE.glob("*/llama-server"), key=lambda p: p.stat().st_mtime,
                         reverse=True)
    for path in candidates:
        looked.append(str(path))
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("llama-server")
    if found:
        return Path(found)
    raise ServerError("llama-server was not found (looked at " + ", ".join(looked)
                      + f" and PATH); {HOW_TO_BUILD}, or set ${ENV_BINARY} to one")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """One llama-server process serving one GGUF; a context manager that always stops it."""

    host = "127.0.0.1"

    def __init__(self, binary: Path, gguf: Path, *, num_ctx: int, port: int = 0,
                 threads: int = 0, startup_timeout_s: float = 120.0,
                 request_timeout_s: float = 600.0, extra_args: tuple[str, ...] = ()) -> None:
        self.binary, self.gguf = Path(binary), Path(gguf)
        self.num_ctx, self.threads = int(num_ctx), int(threads)
        self.wanted_port = int(port)
        self.port = 0
        self.startup_timeout_s = startup_timeout_s
        self.request_timeout_s = request_timeout_s
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        self._log = tempfile.TemporaryFile()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self, port: int) -> list[str]:
        # What Ollama passes (llm/llama_server.go): model, host, port, no web UI, -c num_ctx;
        # one slot so the whole context is one conversation's, as with OLLAMA_NUM_PARALLEL=1.
        cmd = [str(self.binary), "--model", str(self.gguf), "--host", self.host,
               "--port", str(port), "--no-webui", "--offline", "-c", str(self.num_ctx),
               "--parallel", "1"]
        if self.threads > 0:
            cmd += ["--threads", str(self.threads)]
        return cmd + list(self.extra_args)

    # --- lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> LlamaServer:
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()

    def start(self) -> None:
        if not self.gguf.is_file():
            raise ServerError(f"{self.gguf}: GGUF file not found")
        if self.wanted_port and port_in_use(self.wanted_port, self.host):
            raise ServerError(f"port {self.wanted_port} on {self.host} is already in use; "
                              "choose another port (0 picks a free one)")
        t0 = time.monotonic()
        # A free port can be taken between looking and binding: try a fresh one then.
        for attempt in range(3):
            self.port = self.wanted_port or free_port(self.host)
            self._spawn()
            if self._wait_ready(t0):
                self.startup_s = time.monotonic() - t0
                return
            if self.wanted_port or not self._bind_failed() or attempt == 2:
                break
            self.stop()
        raise ServerError(self._exit_message("llama-server did not start"))

    def _spawn(self) -> None:
        self._log.seek(0)
        self._log.truncate()
        # Its own session (process group), so stop() can end it and anything it started.
        self.proc = subprocess.Popen(self.command(self.port), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def _wait_ready(self, t0: float) -> bool:
        """True once /health answers 200; False when the process exited; raises on timeout."""
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, OSError, HTTPException):
                pass  # not listening yet, or 503 while the model loads
            if time.monotonic() - t0 > self.startup_timeout_s:
                raise ServerError(f"llama-server did not become ready within "
                                  f"{self.startup_timeout_s:.0f} s (deploy.server_start_timeout_s)"
                                  f"; last lines of its log:\n{self.log_tail()}")
            time.sleep(0.1)

    def _bind_failed(self) -> bool:
        text = self.log_tail(4000).lower()
        return "bind" in text or "address already in use" in text

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (the server, or anything it forked) goes now.
        self._signal_group(proc, signal.SIGKILL)
        proc.wait()

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, limit: int = 1500) -> str:
        if self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - limit))
        return self._log.read().decode("utf-8", errors="replace").strip()

    def _exit_message(self, what: str) -> str:
        code = self.proc.poll() if self.proc is not None else None
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exit code {code}" if code is not None else "still running")
        return f"{what} ({how}); last lines of its log:\n{self.log_tail()}"

    # --- requests ---------------------------------------------------------------------------
    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST JSON, return the JSON answer; a dead or failing server is a ServerError."""
        if self.proc is None:
            raise ServerError("llama-server is not running")
        req = urllib.request.Request(f"{self.url}{path}", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.request_timeout_s) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", errors="replace")[:1000]
            raise ServerError(f"llama-server answered {path} with HTTP {exc.code}: {body}"
                              ) from None
        except (urllib.error.URLError, OSError, HTTPException, ValueError) as exc:
            # Give the process a moment to be reaped, so a crash reads as a crash.
            for _ in range(20):
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            if self.proc.poll() is not None:
                raise ServerError(self._exit_message(f"llama-server died while answering {path}")
                                  ) from None
            raise ServerError(f"llama-server did not answer {path} ({type(exc).__name__}: "
                              f"{exc})") from None
