"""A local stand-in for Ollama's model management API — what llama-server cannot show.

Endpoints (as documented in Ollama's docs/api.md): ``GET /api/tags``, ``HEAD|POST
/api/blobs/:digest``, ``POST /api/create`` (files + template + system + parameters, streamed
status lines) and ``POST /api/show`` (what was stored). It serves no chat: answering is tested
on the real engine Ollama runs, llama-server (``engine.deploy.llama_server``); a chat request
gets HTTP 501, so a test sees when something still asks the stand-in for answers.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class StandIn:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.models: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        handler = type("Handler", (_Handler,), {"standin": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    standin: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, code: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def do_GET(self) -> None:
        s = self.standin
        s.requests.append(("GET", self.path))
        if self.path == "/api/tags":
            self._json(200, {"models": [
                {"name": n, "model": n, "modified_at": "2026-01-01T00:00:00Z",
                 "size": m["gguf"].stat().st_size, "digest": m["digest"].split(":")[-1],
                 "details": {"format": "gguf"}} for n, m in s.models.items()]})
        else:
            self._json(404, {"error": "not found"})

    def do_HEAD(self) -> None:
        s = self.standin
        s.requests.append(("HEAD", self.path))
        digest = self.path.rsplit("/", 1)[-1]
        ok = self.path.startswith("/api/blobs/") and (s.blobs / digest.replace(":", "-")).exists()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        s = self.standin
        s.requests.append(("POST", self.path))
        body = self._body()
        if self.path.startswith("/api/blobs/"):
            digest = self.path.rsplit("/", 1)[-1]
            if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                self._json(400, {"error": "digest mismatch"})
                return
            (s.blobs / digest.replace(":", "-")).write_bytes(body)
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        req = json.loads(body or b"{}")
        if self.path == "/api/create":
            self._create(req)
        elif self.path == "/api/show":
            m = s.models.get(req.get("model", ""))
            if m is None:
                self._json(404, {"error": f"model '{req.get('model')}' not found"})
                return
            params = "\n".join(f"{k} {json.dumps(v) if isinstance(v, str) else v}"
                               for k, vals in m["parameters"].items()
                               for v in (vals if isinstance(vals, list) else [vals]))
            self._json(200, {"template": m["template"], "system": m.get("system"),
                             "parameters": params, "modelfile": "", "details": {"format": "gguf"},
                             "model_info": {"general.architecture": "llama"},
                             "capabilities": ["completion"] + (["tools"] if ".Tools" in
                                                               m["template"] else [])})
        elif self.path == "/api/chat":
            self._json(501, {"error": "the stand-in serves no chat (use llama-server)"})
        else:
            self._json(404, {"error": "not found"})

    def _create(self, req: dict[str, Any]) -> None:
        s = self.standin
        files = req.get("files") or {}
        if len(files) != 1:
            self._json(400, {"error": "exactly one GGUF file expected"})
            return
        ((_name, digest),) = files.items()
        blob = s.blobs / digest.replace(":", "-")
        if not blob.exists():
            self._json(400, {"error": f"blob {digest} not found"})
            return
        s.models[req["model"]] = {"gguf": blob, "digest": digest,
                                  "template": req.get("template") or "",
                                  "system": req.get("system"),
                                  "parameters": req.get("parameters") or {}}
        lines = [{"status": "parsing GGUF"}, {"status": f"using existing layer {digest}"},
                 {"status": "writing manifest"}, {"status": "success"}]
        if req.get("stream", True):
            payload = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        else:
            self._json(200, lines[-1])
