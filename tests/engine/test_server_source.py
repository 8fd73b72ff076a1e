"""``evaluate --server``: stage 5 through an OpenAI chat API server — llama-server here, on a
tiny GGUF served natively — scoring the text the model wrote, written down as it arrives."""

from __future__ import annotations

import json

import pytest

from engine import config, toolcalls
from engine.deploy import llama_server as ls
from engine.evaluate import cli as evaluate_cli
from engine.evaluate import sources
from engine.export import prompts
from engine.stages.deploy import smoke_records
from tests.support.deploy_fixtures import (  # noqa: F401 (fixtures)
    NEG_RECORD,
    TOOL_RECORD,
    qwen_model,
    server_binary,
)


def test_structured_calls_are_scored_as_the_text_the_model_wrote(qwen_model, server_binary,
                                                                 tmp_path) -> None:
    cfg, recs = qwen_model.cfg, smoke_records(qwen_model.cfg)
    tok = prompts.renderer(qwen_model.model_dir, cfg).tok
    with ls.LlamaServer(server_binary, qwen_model.gguf, num_ctx=2048, threads=2) as server:
        src = sources.ServerSource(server.url, cfg, tok, stream_to=tmp_path / "answers.jsonl")
        answers = src(recs)
    call = toolcalls.read_calls(TOOL_RECORD["output"])
    # llama-server returned tool_calls; the scorers get the model's native <tool_call> text.
    assert answers == [toolcalls.render_calls(call, "qwen"), NEG_RECORD["output"]]
    streamed = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert streamed == [{"id": r.id, "answer": a} for r, a in zip(recs, answers)]
    assert src.last_prompts == [src.renderer.render(r).prompt for r in recs]


def test_evaluate_server_auto_serves_the_gguf_and_meets_the_targets(qwen_model, server_binary,
                                                                    tmp_path, capsys) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text(config.dumps(qwen_model.cfg))
    code = evaluate_cli.evaluate_main([], source=("gguf", str(qwen_model.gguf)), run=None,
                                      out=str(tmp_path / "out"), config_file=str(conf), sets=[],
                                      as_json=True, server="auto")
    report = json.loads(capsys.readouterr().out)
    assert report["source"].startswith("server:http://127.0.0.1:")
    assert report["metrics"]["tool.tool_correct"] == 1.0
    assert report["metrics"]["tool_neg.no_tool_call"] == 1.0
    assert len((tmp_path / "out" / "answers.jsonl").read_text().splitlines()) == 2
    met = {t["item"]: t["met"] for t in report["targets"]}
    assert met["eval.tool_correct"] and met["eval.tool_neg"]
    assert code == 0


def test_server_auto_without_a_gguf_says_what_to_give(qwen_model) -> None:
    tok = prompts.renderer(qwen_model.model_dir, qwen_model.cfg).tok
    with pytest.raises(sources.SourceError, match="--gguf FILE"):
        sources.ServerSource("auto", qwen_model.cfg, tok)
