"""llama-server, started by the suite on a tiny GGUF: it comes up, answers, and goes away.

The binary is the one `make setup` builds; without it these tests fail (they are the proof
that serving works, so they are never skipped).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from engine.deploy import llama_server as ls
from tests.support.deploy_fixtures import chatml_model, server_binary  # noqa: F401 (fixtures)


def _gone(pid: int) -> bool:
    """No process and no process group of that id are left (reaped, not a zombie)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        pass
    else:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_it_starts_answers_and_stops_leaving_no_process(server_binary, chatml_model) -> None:
    with ls.LlamaServer(server_binary, chatml_model.gguf, num_ctx=1024, threads=2) as server:
        pid = server.proc.pid
        assert server.host == "127.0.0.1" and server.port > 0
        assert server.startup_s is not None and server.startup_s < 30
        r = server.post("/completion", {"prompt": "<|im_start|>user\nhi<|im_end|>\n",
                                        "n_predict": 4, "temperature": 0})
        assert r["tokens_predicted"] <= 4
        assert "-c" in server.command(server.port) and "--no-webui" in server.command(1)
    assert _gone(pid)
    assert server.proc is None
    with pytest.raises(ls.ServerError, match="not running"):
        server.post("/completion", {})


def test_it_stops_even_when_the_work_inside_fails(server_binary, chatml_model) -> None:
    with pytest.raises(ZeroDivisionError):
        with ls.LlamaServer(server_binary, chatml_model.gguf, num_ctx=512, threads=2) as server:
            pid = server.proc.pid
            _ = 1 / 0
    assert _gone(pid)


def test_a_port_already_in_use_is_refused_by_name(server_binary, chatml_model) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ls.ServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            with ls.LlamaServer(server_binary, chatml_model.gguf, num_ctx=512, port=port):
                pass


def test_a_server_that_dies_mid_request_says_so(server_binary, chatml_model) -> None:
    with ls.LlamaServer(server_binary, chatml_model.gguf, num_ctx=8192, threads=2) as server:
        pid = server.proc.pid
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        t0 = time.monotonic()
        with pytest.raises(ls.ServerError) as err:  # a long answer, cut by the kill
            server.post("/completion", {"prompt": "a", "n_predict": 8000, "ignore_eos": True,
                                        "temperature": 0})
        assert time.monotonic() - t0 < 30
    assert "died while answering /completion" in str(err.value)
    assert "killed by signal 9" in str(err.value)
    assert _gone(pid)


def test_a_file_it_cannot_load_fails_with_its_log(server_binary, tmp_path) -> None:
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"GGUF but not really")
    with pytest.raises(ls.ServerError) as err:
        with ls.LlamaServer(server_binary, bad, num_ctx=512):
            pass
    assert "did not start (exit code" in str(err.value)
    assert "last lines of its log" in str(err.value)


def test_the_binary_is_found_or_the_message_says_where_it_looked(monkeypatch, tmp_path,
                                                                 server_binary) -> None:
    monkeypatch.setenv(ls.ENV_BINARY, str(tmp_path / "nowhere"))
    with pytest.raises(ls.ServerError, match="WEB4TUI_LLAMA_SERVER is .* not an executable"):
        ls.find_binary()
    monkeypatch.setenv(ls.ENV_BINARY, str(server_binary))
    assert ls.find_binary() == server_binary
    monkeypatch.delenv(ls.ENV_BINARY)
    assert ls.find_binary(str(server_binary)) == server_binary  # deploy.llama_server
    assert Path(ls.find_binary()).name == "llama-server"  # what `make setup` built
