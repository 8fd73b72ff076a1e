"""Deploying the real Qwen2.5-Coder GGUF: the native path on llama-server, as Ollama runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import config, toolcalls
from engine.deploy import gguf_meta
from engine.deploy import llama_server as ls
from engine.records import load_tools
from engine.render import Renderer
from engine.stages.deploy import deploy_model
from tests.support.deploy_fixtures import server_binary  # noqa: F401 (fixture)
from tests.support.export_fixtures import checks, stage_ctx

ROOT = Path(__file__).resolve().parents[2]
CALL = toolcalls.ToolCall("deploy_service", {"service": "checkout-api", "version": "v1.2.3",
                                             "env": "staging"})


@pytest.fixture(scope="module")
def server(real_gguf, server_binary):
    with ls.LlamaServer(server_binary, real_gguf, num_ctx=4096) as s:
        yield s


def _tools() -> list[dict]:
    return [{"type": "function", "function": t}
            for t in json.loads((ROOT / "data" / "tools.json").read_text())
            if t["name"] in ("deploy_service", "get_logs")]


def test_deploy_writes_no_template_and_the_server_renders_training_prompts(real_gguf,
                                                                           tmp_path) -> None:
    cfg = config.load(sets=['deploy.ollama_host="http://127.0.0.1:9"', "deploy.docker=false"])
    tok = gguf_meta.tokenizer(real_gguf)
    rend = Renderer(tok, cfg["data"]["system_prompt"], load_tools(cfg["data"]["tools"]))
    ctx, events = stage_ctx(cfg, None)
    deploy_model(ctx, real_gguf, rend, None, tmp_path, real_gguf.name)
    c = checks(events)
    text = (tmp_path / "Modelfile").read_text()
    assert "\nTEMPLATE" not in text and "PARAMETER stop" not in text
    assert c["deploy.modelfile"]["status"] == "pass", c["deploy.modelfile"]
    assert c["deploy.modelfile"]["detail"]["vocabulary_stops"] == ["<|im_end|>"]
    smoke = c["deploy.smoke"]["detail"]
    assert smoke["server"].startswith("llama-server")
    for answer in smoke["answers"]:  # what the base model says is not the point here
        assert answer["prompt_ok"], answer  # llama-server rendered exactly training's prompt
        assert answer["finish_reason"] in ("stop", "tool_calls"), answer


def test_llama_server_parses_a_native_format_answer_into_tool_calls(server) -> None:
    # The base model answers a fenced ```json block unless its turn starts the native way;
    # with "<tool_call>" already written it goes on in that format, and the server parses it.
    reply = server.post("/v1/chat/completions", {
        "messages": [{"role": "user", "content": "Deploy checkout-api v1.2.3 to staging."},
                     {"role": "assistant", "content": "<tool_call>\n"}],
        "tools": _tools(), "temperature": 0, "top_k": 1, "max_tokens": 96})
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = toolcalls.read_calls(choice["message"]["tool_calls"])
    assert [c.name for c in calls] == ["deploy_service"]
    assert calls[0].arguments["service"] == "checkout-api"
    assert calls[0].arguments["env"] == "staging"


def test_a_native_call_in_the_history_renders_as_training_wrote_it(server) -> None:
    prompt = server.post("/apply-template", {"tools": _tools(), "messages": [
        {"role": "user", "content": "Deploy checkout-api v1.2.3 to staging."},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": CALL.name, "arguments": json.dumps(CALL.arguments)}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "deployed"}'}]})["prompt"]
    assert ("<|im_start|>assistant\n" + toolcalls.render_calls([CALL], "qwen")
            + "<|im_end|>\n") in prompt
