"""A local stand-in for the parts of Ollama's HTTP API that web4tui uses, backed by llama.cpp.

Endpoints (as documented in Ollama's docs/api.md): ``GET /api/tags``, ``GET /api/version``,
``HEAD|POST /api/blobs/:digest``, ``POST /api/create`` (files + template + system +
parameters, streamed status lines), ``POST /api/show``, ``POST /api/chat``.

Chat renders the prompt the way Ollama does — the stored Go TEMPLATE over the messages, the
stored SYSTEM first when the chat has none — and generates greedily with llama-cpp-python on
the uploaded GGUF. By default generation ends *only* at the stored ``stop`` strings or at
``num_predict`` (``honour_eog=True`` also ends at the GGUF's end-of-generation tokens, as
Ollama does), so a test that passes proves the Modelfile's stops are enough on their own.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from engine.deploy import modelfile as mf


class StandIn:
    def __init__(self, root: Path, *, honour_eog: bool = False) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.models: dict[str, dict[str, Any]] = {}
        self.honour_eog = honour_eog
        self.requests: list[tuple[str, str]] = []
        self.last_prompt = ""
        self._llms: dict[str, Any] = {}
        self._lock = threading.Lock()
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
        for llm in self._llms.values():
            llm.close()

    # --- model work --------------------------------------------------------------------
    def chat(self, req: dict[str, Any]) -> dict[str, Any]:
        model = self.models.get(req.get("model", ""))
        if model is None:
            raise KeyError(f"model {req.get('model')!r} not found")
        params = dict(model["parameters"])
        params.update(req.get("options") or {})
        prompt = mf.render_ollama(model["template"], model.get("system") or "",
                                  req.get("messages") or [], req.get("tools"))
        self.last_prompt = prompt
        stops = params.get("stop") or []
        max_tokens = int(params.get("num_predict", 128))
        with self._lock:
            llm = self._llm(model["gguf"], int(params.get("num_ctx", 2048)))
            text, reason, n_prompt, n_out = self._generate(llm, prompt, stops, max_tokens)
        return {"model": req["model"], "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "message": {"role": "assistant", "content": text}, "done": True,
                "done_reason": reason, "prompt_eval_count": n_prompt, "eval_count": n_out}

    def _llm(self, gguf: Path, n_ctx: int) -> Any:
        key = f"{gguf}:{n_ctx}"
        if key not in self._llms:
            from llama_cpp import Llama

            self._llms[key] = Llama(model_path=str(gguf), n_ctx=n_ctx, verbose=False, seed=0,
                                    n_threads=2)
        return self._llms[key]

    def _generate(self, llm: Any, prompt: str, stops: list[str],
                  max_tokens: int) -> tuple[str, str, int, int]:
        import llama_cpp

        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        out: list[int] = []
        text = ""
        for tok in llm.generate(tokens, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
            if self.honour_eog and llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
                return text, "stop", len(tokens), len(out)
            out.append(tok)
            text = llm.detokenize(out, special=True).decode("utf-8", errors="ignore")
            for s in stops:
                if s in text:
                    return text[:text.index(s)], "stop", len(tokens), len(out)
            if len(out) >= max_tokens:
                return text, "length", len(tokens), len(out)
        return text, "stop", len(tokens), len(out)


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
        elif self.path == "/api/version":
            self._json(200, {"version": "0.0.0-standin"})
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
            try:
                self._json(200, s.chat(req))
            except KeyError as exc:
                self._json(404, {"error": str(exc)})
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
        s.models[req["model"]] = {"gguf": blob, "digest": digest, "template": req.get("template"),
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
