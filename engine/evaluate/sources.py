"""Where answers come from. Every source is an answer function: ``source(records) -> answers``.

- :class:`ModelSource` — a transformers model already in memory (the mini stage after
  training; anything with ``generate``-compatible ``forward``), batched greedy decoding;
- :func:`open_hf` — a run's PEFT adapter on its base model, or a merged HF folder;
- :class:`engine.evaluate.gguf_source.GGUFSource` — a GGUF file through llama-cpp-python
  (greedy, one prompt at a time, llama.cpp's cache kept between prompts);
- :class:`OllamaSource` — a model served by Ollama (raw prompt, temperature 0);
- :class:`ServerSource` — an OpenAI chat API server (llama-server, Ollama's /v1) asked with
  the run's tools, as a client of the deployed model asks it;
- :class:`MLXSource` — an mlx-lm adapter on its base (Apple Silicon);
- :class:`PredictionsSource` — a JSONL file of ``{"id": ..., "answer": ...}`` made anywhere.

Every model source sends the prompt :class:`engine.render.Renderer` makes — the one rendering
used in training and deployment — and keeps it in ``last_prompts`` for the per-record report.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from engine import models
from engine.backends import select
from engine.context import Progress
from engine.records import (
    REASONS,
    DataFileError,
    Record,
    iter_lines,
    load_tools,
    read_json_line,
)
from engine.render import Renderer

log = logging.getLogger(__name__)


class SourceError(ValueError):
    """The answers cannot be obtained (bad file, missing adapter...); says what to do."""


class Source:
    """Base: a label for reports, the rendered prompts of the last call, progress hooks."""

    kind = "source"

    def __init__(self, label: str) -> None:
        self.label = label
        self.last_prompts: list[str] | None = None
        self.progress: Progress | None = None
        self.should_stop: Callable[[], bool] = lambda: False
        # on_answer(place in the records, answer) as each answer exists: kept on disk
        self.on_answer: Callable[[int, str], None] | None = None

    def __call__(self, records: Sequence[Record]) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (a server it started); a no-op for most."""

    def _answered(self, i: int, text: str) -> None:
        if self.on_answer is not None:
            self.on_answer(i, text)

    def _tick(self, done: int, total: int, started: float) -> None:
        import time
        if self.progress is not None:
            elapsed = time.monotonic() - started
            self.progress(done, total, elapsed / done * (total - done) if done else None)


def renderer_for(tokenizer: Any, cfg: dict[str, Any]) -> Renderer:
    return Renderer(tokenizer, cfg["data"]["system_prompt"], load_tools(cfg["data"]["tools"]))


# --- transformers ----------------------------------------------------------------------------
class ModelSource(Source):
    """A loaded transformers (or PEFT) model: batched greedy answers with a KV cache."""

    kind = "model"

    def __init__(self, model: Any, tokenizer: Any, cfg: dict[str, Any], label: str = "model"):
        super().__init__(label)
        self.model, self.tok, self.cfg = model, tokenizer, cfg
        self.renderer = renderer_for(tokenizer, cfg)

    def __call__(self, records: Sequence[Record]) -> list[str]:
        from engine.evaluate.generate import generate_text

        prompts = [self.renderer.render(r).prompt for r in records]
        self.last_prompts = prompts
        was_training = getattr(self.model, "training", False)
        self.model.eval()
        try:
            return generate_text(self.model, self.tok, prompts,
                                 max_new_tokens=self.cfg["eval"]["max_new_tokens"],
                                 batch_size=self.cfg["eval"]["batch_size"],
                                 progress=self.progress, should_stop=self.should_stop,
                                 on_answer=self.on_answer,
                                 groups=[self.renderer.frame(r) if self.renderer.fast
                                         else r.shows_tools for r in records])
        finally:
            if was_training:
                self.model.train()


def base_model_for(adapter: Path, cfg: dict[str, Any]) -> Path:
    """The base an adapter was trained on: its run's config (outputs/<run>/lora), else the
    adapter's own record of it when that folder exists, else the config's model.id."""
    import tomllib

    run_config = adapter.parent / "config.toml"
    model_id = cfg["model"]["id"]
    if run_config.is_file():
        model_id = tomllib.loads(run_config.read_text(encoding="utf-8"))["model"]["id"]
    else:
        try:
            recorded = json.loads((adapter / "adapter_config.json").read_text())
            base = recorded.get("base_model_name_or_path") or ""
            if base and Path(base).is_dir():
                return Path(base)
        except (OSError, ValueError):
            pass
    return models.resolve(model_id, cfg["model"]["cache_dir"])


def open_hf(folder: str | Path, cfg: dict[str, Any]) -> Source:
    """A PEFT adapter folder (on its base) or a merged HF model folder."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if (folder / "adapters.safetensors").exists():
        return MLXSource(folder, cfg)
    is_adapter = (folder / "adapter_config.json").exists()
    if not is_adapter and not (folder / "config.json").exists():
        raise SourceError(f"{folder}: neither a PEFT adapter (adapter_config.json) nor a "
                          "model folder (config.json)")
    base = base_model_for(folder, cfg) if is_adapter else folder
    tok_dir = folder if (folder / "tokenizer_config.json").exists() else base
    tok = models.load_tokenizer(tok_dir, cfg["model"]["trust_remote_code"])
    choice = select(cfg, task="eval", backend="torch")  # a PEFT or HF folder runs on torch
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(choice.precision, torch.float32)
    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=dtype, trust_remote_code=cfg["model"]["trust_remote_code"]).to(choice.device)
    if is_adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, folder)
    model.eval()
    kind = "adapter" if is_adapter else "merged"
    src = ModelSource(model, tok, cfg, label=f"{kind}:{folder}")
    src.kind = kind
    return src


# --- Ollama ----------------------------------------------------------------------------------
class OllamaSource(Source):
    """A model served by Ollama, sent the rendered prompt raw (no second template)."""

    kind = "ollama"

    def __init__(self, name: str, cfg: dict[str, Any], tokenizer: Any = None,
                 client: Any = None) -> None:
        super().__init__(f"ollama:{name}")
        self.name, self.cfg = name, cfg
        if client is None:
            try:
                import ollama
            except ImportError as exc:
                raise SourceError("the ollama client is not installed: pip install ollama"
                                  ) from exc
            client = ollama.Client(host=cfg["deploy"]["ollama_host"] or None)
        self.client = client
        if tokenizer is None:
            tokenizer = models.load_tokenizer(models.resolve(cfg["model"]["id"],
                                                             cfg["model"]["cache_dir"]))
        self.tok = tokenizer
        self.renderer = renderer_for(tokenizer, cfg)
        from engine.evaluate.generate import stop_token_ids
        self.stops = [tokenizer.convert_ids_to_tokens(i) for i in stop_token_ids(tokenizer)]

    def __call__(self, records: Sequence[Record]) -> list[str]:
        import time

        prompts = [self.renderer.render(r).prompt for r in records]
        self.last_prompts = prompts
        answers, started = [], time.monotonic()
        options = {"temperature": 0, "top_k": 1, "seed": 0,
                   "num_predict": self.cfg["eval"]["max_new_tokens"], "stop": self.stops}
        for i, prompt in enumerate(prompts):
            if self.should_stop():
                break
            try:
                resp = self.client.generate(model=self.name, prompt=prompt, raw=True,
                                            options=options)
            except Exception as exc:  # connection refused, unknown model: the user can fix it
                raise SourceError(f"Ollama could not answer with {self.name!r} ({exc}); is "
                                  "`ollama serve` running and the model created?") from exc
            text = resp["response"] if isinstance(resp, dict) else resp.response
            answers.append(text)
            self._answered(i, text)
            self._tick(i + 1, len(prompts), started)
        return answers


# --- an OpenAI chat API server -------------------------------------------------------------
class ServerSource(Source):
    """Answers from an OpenAI-compatible chat server, asked as the deployed model's clients
    ask it: messages and, for a tool-capable template, the run's tools.

    ``url`` is a running server (llama-server, Ollama's ``/v1``, ...) or ``"auto"``: then
    llama-server is started here on ``gguf`` and stopped by :meth:`close`. Each answer is
    appended to ``stream_to`` (the predictions format) as it arrives, so a long evaluation
    shows its progress on disk and can be re-scored later.
    """

    kind = "server"

    def __init__(self, url: str, cfg: dict[str, Any], tokenizer: Any, *,
                 gguf: str | Path | None = None, stream_to: str | Path | None = None) -> None:
        from engine.deploy import llama_server as ls

        self.cfg, self.tok = cfg, tokenizer
        self.renderer = renderer_for(tokenizer, cfg)
        self.stream_to = Path(stream_to) if stream_to else None
        self.server: Any = None
        if url == "auto":
            if gguf is None or not Path(gguf).is_file():
                raise SourceError("--server auto starts llama-server on a GGUF: give --gguf "
                                  "FILE, or --run RUN after its export")
            dep = cfg["deploy"]
            try:
                self.server = ls.LlamaServer(
                    ls.find_binary(dep["llama_server"]), Path(gguf),
                    num_ctx=cfg["eval"]["gguf_context"], threads=dep["server_threads"],
                    startup_timeout_s=dep["server_start_timeout_s"],
                    request_timeout_s=dep["timeout_s"]).__enter__()
            except ls.ServerError as exc:
                raise SourceError(str(exc)) from None
            url = self.server.url
        self.url = url.rstrip("/")
        super().__init__(f"server:{self.url}" + (f" ({Path(gguf).name})" if gguf else ""))

    def close(self) -> None:
        if self.server is not None:
            self.server.__exit__()
            self.server = None

    def request(self, record: Record) -> dict[str, Any]:
        """The chat request for a record: what training rendered, as messages."""
        tools = self.renderer.tools_for(record)
        msgs, template_tools = self.renderer.messages(record.user_text, tools)
        body: dict[str, Any] = {"model": self.cfg["deploy"]["name"], "messages": msgs,
                                "temperature": 0.0, "top_k": 1, "seed": 0, "stream": False,
                                "max_tokens": self.cfg["eval"]["max_new_tokens"]}
        if template_tools:  # else the listing is in the system message, as in training
            body["tools"] = template_tools
        return body

    def answer_text(self, message: dict[str, Any]) -> str:
        """The text scored for an answer. A server that parsed tool calls returns them as
        structured ``tool_calls``; the scorers judge the model's own text, so the calls are
        written back in the format the model was trained to emit (render_calls), after any
        content that came with them — exactly the text the model generated."""
        from engine.toolcalls import ToolCallError, read_calls, render_calls

        content = message.get("content") or ""
        raw = message.get("tool_calls")
        if not raw:
            return content
        try:
            calls = render_calls(read_calls(raw), self.renderer.call_format)
        except ToolCallError:
            return content
        return f"{content.rstrip()}\n{calls}" if content.strip() else calls

    def __call__(self, records: Sequence[Record]) -> list[str]:
        import time
        import urllib.request

        self.last_prompts = [self.renderer.render(r).prompt for r in records]
        answers, started = [], time.monotonic()
        out = open(self.stream_to, "a", encoding="utf-8") if self.stream_to else None
        try:
            for i, rec in enumerate(records):
                if self.should_stop():
                    break
                body = self.request(rec)
                try:
                    if self.server is not None:
                        reply = self.server.post("/v1/chat/completions", body)
                    else:
                        req = urllib.request.Request(
                            f"{self.url}/v1/chat/completions", data=json.dumps(body).encode(),
                            headers={"Content-Type": "application/json"})
                        with urllib.request.urlopen(req, timeout=self.cfg["deploy"]["timeout_s"]
                                                    ) as r:
                            reply = json.loads(r.read())
                    message = reply["choices"][0]["message"]
                except (OSError, ValueError, KeyError, IndexError, RuntimeError) as exc:
                    raise SourceError(f"{self.url} did not answer record {rec.id} ({exc}); is "
                                      "the server running with the model loaded?") from None
                answers.append(self.answer_text(message))
                self._answered(i, answers[-1])
                if out is not None:
                    out.write(json.dumps({"id": rec.id, "answer": answers[-1]},
                                         ensure_ascii=False) + "\n")
                    out.flush()
                self._tick(i + 1, len(records), started)
        finally:
            if out is not None:
                out.close()
        return answers


# --- mlx -------------------------------------------------------------------------------------
class MLXSource(Source):
    """An mlx-lm adapter (adapters.safetensors) on its base model, greedy."""

    kind = "mlx"

    def __init__(self, adapter: Path, cfg: dict[str, Any]) -> None:
        super().__init__(f"mlx:{adapter}")
        try:
            from mlx_lm import load
        except ImportError as exc:
            raise SourceError("this is an MLX adapter and mlx-lm is not installed") from exc
        from engine.backends.mlx_base import config_overrides

        base = base_model_for(adapter, cfg)
        fixes = config_overrides(Path(base)) if (Path(base) / "config.json").exists() else {}
        self.model, self.tok = load(str(base), model_config=fixes, adapter_path=str(adapter))
        self.cfg = cfg
        self.renderer = renderer_for(self.tok, cfg)

    def __call__(self, records: Sequence[Record]) -> list[str]:
        import time

        from mlx_lm import generate
        from mlx_lm.sample_utils import make_sampler

        prompts = [self.renderer.render(r).prompt for r in records]
        self.last_prompts = prompts
        answers, started = [], time.monotonic()
        for i, prompt in enumerate(prompts):
            ids = self.tok.encode(prompt, add_special_tokens=False)
            answers.append(generate(self.model, self.tok, prompt=ids,
                                    max_tokens=self.cfg["eval"]["max_new_tokens"],
                                    sampler=make_sampler(temp=0.0)))
            self._answered(i, answers[-1])
            self._tick(i + 1, len(prompts), started)
        return answers


# --- predictions -----------------------------------------------------------------------------
class PredictionsSource(Source):
    """Answers from a JSONL file: one ``{"id": ..., "answer": ...}`` per record."""

    kind = "predictions"

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        super().__init__(f"predictions:{path}")
        if not path.is_file():
            raise SourceError(f"{path}: predictions file not found")
        self.answers: dict[str, str] = {}
        try:  # the records' reader discipline: bytes, bounded nesting, named problems
            lines = list(iter_lines(path))
        except DataFileError as exc:
            raise SourceError(str(exc)) from None
        for number, raw in lines:
            where = f"{path}:{number}"
            obj, reason, message = read_json_line(raw)
            if reason is not None:
                raise SourceError(f"{where}: {REASONS[reason]} ({message})")
            if not isinstance(obj, dict) or not isinstance(obj.get("id"), (str, int)):
                raise SourceError(f"{where}: each line must be an object with the record's "
                                  "\"id\" (string or integer) and its \"answer\"")
            if not isinstance(obj.get("answer"), str):
                raise SourceError(f"{where}: field \"answer\" must be a string")
            key = str(obj["id"])
            if key in self.answers:
                raise SourceError(f"{where}: a second answer for id {key!r}")
            self.answers[key] = obj["answer"]

    def __call__(self, records: Sequence[Record]) -> list[str]:
        missing = [r.id for r in records if r.id not in self.answers]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more"
                                              if len(missing) > 5 else "")
            raise SourceError(f"{self.label.split(':', 1)[1]}: no answer for {len(missing)} of "
                              f"{len(records)} records ({shown}); give every record id an "
                              "answer, or pass only the eval files you predicted")
        wanted = {r.id for r in records}
        extra = [k for k in self.answers if k not in wanted]
        if extra:
            log.warning("%d predictions name no evaluated record (e.g. %s)", len(extra), extra[0])
        return [self.answers[r.id] for r in records]


def write_predictions(path: str | Path, records: Sequence[Record], answers: Sequence[str]) -> None:
    """The predictions format, from any answers (so any source can be re-scored later)."""
    from engine.runs import atomic_write
    atomic_write(path, "".join(json.dumps({"id": r.id, "answer": a}, ensure_ascii=False) + "\n"
                               for r, a in zip(records, answers)))
