"""Stage 7: the Modelfile is right for the model, Ollama gets it, the model answers and stops.

"Ollama" here is a local stand-in speaking the parts of its HTTP API web4tui uses and
generating with llama.cpp on the real GGUF, honouring the stored template and stops only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.deploy import modelfile as mf
from engine.deploy import ollama_client as oc
from engine.export import prompts
from engine.stages import deploy as deploy_stage
from engine.stages import export as export_stage
from tests.support import modelfile_parser
from tests.support.export_fixtures import (  # noqa: F401 (fixtures)
    checks,
    run_config,
    smoke_record,
    stage_ctx,
    tiny_base,
    trained_run,
)
from tests.support.ollama_standin import StandIn

ROOT = Path(__file__).resolve().parents[2]


def _tokenizer_dir(tmp_path: Path, base: Path, template: str | None) -> Path:
    d = tmp_path / "tok"
    d.mkdir(exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "config.json"):
        shutil.copy(base / f, d / f)
    if template:
        (d / "chat_template.jinja").write_text(template)
    return d


@pytest.mark.parametrize("template,family,stop", [
    (None, "chatml", "<|im_end|>"),
    ("qwen2.5-coder.jinja", "chatml-tools", "<|im_end|>"),
    ("deepseek-coder.jinja", "deepseek-coder", "<|EOT|>"),
])
@pytest.mark.parametrize("bake", [True, False])
def test_template_renders_exactly_like_the_chat_template(tmp_path, tiny_base, template, family,
                                                         stop, bake) -> None:
    text = (ROOT / "tests/fixtures/chat_templates" / template).read_text() if template else None
    folder = _tokenizer_dir(tmp_path, tiny_base, text)
    cfg = run_config(folder, tmp_path)
    rend = prompts.renderer(folder, cfg)
    spec = mf.build_spec(tmp_path / "m.gguf", rend, folder, bake_tools=bake, num_ctx=2048)
    assert spec.family == family and stop in spec.stops
    assert mf.verify_template(spec, rend, bake) == []
    assert len(spec.probes) == 3
    if bake:  # the tools are in the system prompt, as training showed them
        assert "deploy_service" in spec.system


def test_qwen_template_renders_tool_calls_and_results() -> None:
    template = mf.FAMILIES["chatml-tools"][0]
    msgs = [{"role": "user", "content": "ship it"},
            {"role": "assistant", "content": "",
             "tool_calls": [{"function": {"name": "deploy_service",
                                          "arguments": {"service": "api"}}}]},
            {"role": "tool", "content": "done"}]
    text = mf.render_ollama(template, "SYS", msgs, tools=[{"type": "function",
                                                           "function": {"name": "t"}}])
    assert text.startswith("<|im_start|>system\nSYS\n\n# Tools\n")
    assert '<tools>\n{"type":"function","function":{"name":"t"}}\n</tools>' in text
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "deploy_service", "arguments": '
            '{"service":"api"}}\n</tool_call><|im_end|>\n') in text
    assert text.endswith("<tool_response>\ndone\n</tool_response><|im_end|>\n"
                         "<|im_start|>assistant\n")


def test_modelfile_values_cannot_inject_directives(tmp_path) -> None:
    spec = mf.ModelSpec(gguf=tmp_path / "gguf" / "m.gguf", family="chatml",
                        template=mf.FAMILIES["chatml"][0],
                        system='Be "careful".\nPARAMETER num_ctx 1\nFROM /etc/passwd\n  ',
                        stops=["<|im_end|>", "<|im_start|>"], num_ctx=4096)
    text = mf.render_modelfile(spec, tmp_path, header="two\nlines")
    parsed = modelfile_parser.parse(text)
    assert parsed == [("from", "./gguf/m.gguf"), ("template", spec.template),
                      ("system", spec.system), ("parameter:stop", "<|im_end|>"),
                      ("parameter:stop", "<|im_start|>"), ("parameter:num_ctx", "4096")]
    for bad in ('end early """\nFROM evil', "zero\u200bwidth", "nul\x00"):
        spec.system = bad
        with pytest.raises(mf.ModelfileError):
            mf.render_modelfile(spec, tmp_path)


@pytest.mark.parametrize("name", ["web4-coder", "me/web4-coder:q4", "reg.example.com:5000/me/m:1",
                                  "Web4_Coder.v2"])
def test_valid_model_names(name) -> None:
    assert oc.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "web4 coder", "-coder", "a/b/c/d", "me.x/model",
                                  "model:tag:x", "m:", "x" * 81, "model;rm -rf", "../etc"])
def test_invalid_model_names(name) -> None:
    with pytest.raises(oc.ModelNameError):
        oc.validate_name(name)


@pytest.fixture(scope="module")
def exported_run(trained_run):
    run, cfg = trained_run
    if not (run / "gguf" / "model-q8_0.gguf").exists():
        ctx, _ = stage_ctx(cfg, run)
        assert export_stage.run(ctx) == "ok"
    return run, cfg


def test_without_ollama_the_steps_are_skipped_with_the_commands(exported_run) -> None:
    run, cfg = exported_run
    cfg = {**cfg, "deploy": {**cfg["deploy"], "ollama_host": "http://127.0.0.1:9"}}
    ctx, events = stage_ctx(cfg, run)
    deploy_stage.run(ctx)
    c = checks(events)
    assert c["deploy.modelfile"]["status"] == "pass"
    assert (run / "Modelfile").read_text().startswith("# Modelfile for run tiny-run")
    for item in ("deploy.create", "deploy.smoke"):
        assert c[item]["status"] == "skip"
        assert f"ollama create web4-coder -f {(run / 'Modelfile').resolve()}" in c[item]["detail"]
        assert "ollama run web4-coder" in c[item]["detail"]
    assert c["deploy.docker"]["status"] == "skip"
    assert "docker model package --gguf" in c["deploy.docker"]["value"]


def test_deploy_creates_the_model_and_it_answers_with_tool_json_and_stops(exported_run,
                                                                        tmp_path) -> None:
    run, cfg = exported_run
    with StandIn(tmp_path / "ollama") as server:
        cfg = {**cfg, "deploy": {**cfg["deploy"], "ollama_host": server.url,
                                 "smoke_max_tokens": 128}}
        ctx, events = stage_ctx(cfg, run)
        deploy_stage.run(ctx)
        c = checks(events)
        assert c["deploy.create"]["status"] == "pass", c["deploy.create"]
        assert c["deploy.smoke"]["status"] == "pass", c["deploy.smoke"]
        # Ollama rendered the prompt exactly as training did.
        rec = smoke_record(cfg)
        assert server.last_prompt == prompts.renderer(run / "merged", cfg).render(rec).prompt
        answer = c["deploy.smoke"]["detail"]["answer"]
        assert json.loads(answer) == json.loads(rec.output)
        paths = [p for _, p in server.requests]
        assert "/api/create" in paths and "/api/chat" in paths and "/api/show" in paths


def test_a_modelfile_without_its_stops_is_caught(exported_run, tmp_path, monkeypatch) -> None:
    run, cfg = exported_run
    monkeypatch.setattr(mf, "stop_tokens", lambda model_dir, tok: [])
    with StandIn(tmp_path / "ollama") as server:
        # Room for the whole tool call and its end-of-turn token, which must then run on.
        cfg = {**cfg, "deploy": {**cfg["deploy"], "ollama_host": server.url,
                                 "smoke_max_tokens": 96}}
        ctx, events = stage_ctx(cfg, run)
        deploy_stage.run(ctx)
        c = checks(events)
        assert c["deploy.create"]["status"] == "pass"
        smoke = c["deploy.smoke"]
        assert smoke["status"] == "fail"
        assert smoke["detail"]["done_reason"] == "length"  # it ran on past the end of turn
        assert "<|im_end|>" in smoke["detail"]["answer"]


def test_a_bad_model_name_fails_before_anything_is_sent(exported_run, tmp_path) -> None:
    run, cfg = exported_run
    with StandIn(tmp_path / "ollama") as server:
        cfg = {**cfg, "deploy": {**cfg["deploy"], "ollama_host": server.url,
                                 "name": "web4 coder; rm -rf ~"}}
        ctx, events = stage_ctx(cfg, run)
        deploy_stage.run(ctx)
        c = checks(events)
        assert c["deploy.create"]["status"] == "fail"
        assert "Ollama model names" in c["deploy.create"]["detail"]
        assert server.requests == []
