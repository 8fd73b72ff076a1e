"""Stage 7: the Modelfile is right for the path Ollama takes, and the model answers on the real
engine Ollama serves it with — llama-server, started here on tiny GGUFs that know the answers.

Ollama's own management API (create, show, tags) is a local stand-in; it serves no chat.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from engine import call_format
from engine.deploy import gotemplate
from engine.deploy import llama_server as ls
from engine.deploy import modelfile as mf
from engine.deploy import ollama_client as oc
from engine.deploy import ollama_tools
from engine.export import prompts
from engine.stages import deploy as deploy_stage
from tests.support import modelfile_parser
from tests.support.deploy_fixtures import (  # noqa: F401 (fixtures)
    TOOL_RECORD,
    chatml_model,
    qwen_model,
    server_binary,
)
from tests.support.export_fixtures import checks, stage_ctx
from tests.support.ollama_standin import StandIn

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "tests" / "fixtures" / "chat_templates"


def _tokenizer_dir(tmp_path: Path, base: Path, template: str | None) -> Path:
    d = tmp_path / "tok"
    d.mkdir(exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "config.json"):
        shutil.copy(base / f, d / f)
    if template:
        (d / "chat_template.jinja").write_text(template)
    return d


def _llama_servers() -> list[int]:
    """Pids of llama-server processes alive now (not zombies)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "llama-server":
                if "State:\tZ" not in (entry / "status").read_text():
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


# --- the Modelfile ------------------------------------------------------------------------

@pytest.mark.parametrize("template,family,stop", [
    (None, "chatml", "<|im_end|>"),
    ("deepseek-coder.jinja", "deepseek-coder", "<|EOT|>"),
])
@pytest.mark.parametrize("bake", [True, False])
def test_go_template_renders_exactly_like_the_chat_template(tmp_path, chatml_model, template,
                                                            family, stop, bake) -> None:
    text = (TEMPLATES / template).read_text() if template else None
    folder = _tokenizer_dir(tmp_path, chatml_model.model_dir, text)
    cfg = {**chatml_model.cfg, "data": {**chatml_model.cfg["data"],
                                        "tools": str(ROOT / "data" / "tools.json")}}
    rend = prompts.renderer(folder, cfg)
    spec = mf.build_spec(tmp_path / "m.gguf", rend, folder, bake_tools=bake, num_ctx=2048)
    assert spec.family == family and spec.path == "go-template"
    assert stop in spec.stops  # no GGUF read: nothing is known to end generation already
    assert mf.verify_template(spec, rend, bake) == []
    labels = [p["probe"] for p in spec.probes]
    assert len(labels) == 5 and "tool call and result" in labels and "tool-call tag" in labels
    assert spec.tool_tag == "{" and spec.tool_format == "json"
    if bake:  # the tools are in the system prompt, as training showed them
        assert "deploy_service" in spec.system


def test_go_template_has_tools_tool_calls_and_the_tool_role() -> None:
    template = mf.FAMILIES["chatml"].template
    for needed in (".Tools", ".ToolCalls", 'eq .Role "tool"'):
        assert needed in template
    msgs = [{"role": "user", "content": "ship it"},
            {"role": "assistant", "content": "",
             "tool_calls": [{"function": {"name": "deploy_service",
                                          "arguments": {"service": "api"}}}]},
            {"role": "tool", "content": "done"}]
    text = mf.render_ollama(template, "SYS", msgs)
    assert text == ("<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nship it<|im_end|>\n"
                    '<|im_start|>assistant\n{"name": "deploy_service", "arguments": '
                    '{"service":"api"}}<|im_end|>\n<|im_start|>tool\ndone<|im_end|>\n'
                    "<|im_start|>assistant\n")
    # Without a system prompt the client's tools are listed in one.
    listed = mf.render_ollama(template, "", msgs[:1], tools=[{"type": "function",
                                                              "function": {"name": "t"}}])
    assert listed.startswith("<|im_start|>system\nTools you can call.")
    assert '\n{"type":"function","function":{"name":"t"}}<|im_end|>\n' in listed


@pytest.mark.parametrize("template,tag", [
    ('{{ if .ToolCalls }}<tool_call>\n{"name": "{{ .Function.Name }}"}{{ end }}', "<tool_call>"),
    ('{{ range .Messages }}{{ if eq .Role "a" }}x{{ else if .ToolCalls }}[TOOL_CALLS] [{{ end }}'
     '{{ end }}', "[TOOL_CALLS] ["),  # cut only at a brace, as Ollama cuts
    ("{{ if .ToolCalls }}{{ range .ToolCalls }}{{ .Function.Name }}{{ end }}{{ end }}", "{"),
    ("{{ .Prompt }}", "{"),
])
def test_the_tool_tag_is_found_as_ollama_finds_it(template, tag) -> None:
    assert gotemplate.tool_tag(template) == tag


def test_ollamas_parser_rules_are_followed() -> None:
    tools = [{"name": "deploy_service"}, {"name": "deploy"}]
    named = '{"name": "deploy_service", "arguments": {"env": "staging"}}'
    calls, content = ollama_tools.read_answer(named, "{", tools)
    assert [(c.name, c.arguments) for c in calls] == [("deploy_service", {"env": "staging"})]
    assert content == ""
    # A model trained on {"tool", ...} (not ours) has no "name": Ollama hands the whole
    # object over — why the plain-JSON format is {"name", "arguments"}.
    other = '{"tool": "deploy_service", "arguments": {"env": "staging"}}'
    calls, _ = ollama_tools.read_answer(other, "{", tools)
    assert calls[0].arguments == json.loads(other)
    # With the tag "{" any text first makes the whole answer content.
    assert ollama_tools.read_answer("Sure: " + named, "{", tools) == ([], "Sure: " + named)
    tagged = f"<tool_call>\n{named}\n</tool_call>"
    assert ollama_tools.read_answer(tagged, "<tool_call>", tools)[0][0].name == "deploy_service"


def test_modelfile_values_cannot_inject_directives(tmp_path) -> None:
    spec = mf.ModelSpec(gguf=tmp_path / "gguf" / "m.gguf", family="chatml",
                        template=mf.FAMILIES["chatml"].template,
                        system='Be "careful".\nPARAMETER num_ctx 1\nFROM /etc/passwd\n  ',
                        stops=["<|im_end|>"], num_ctx=4096)
    text = mf.render_modelfile(spec, tmp_path, header="two\nlines")
    parsed = modelfile_parser.parse(text)
    assert parsed == [("from", "./gguf/m.gguf"), ("template", spec.template),
                      ("system", spec.system), ("parameter:stop", "<|im_end|>"),
                      ("parameter:num_ctx", "4096")]
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


# --- the stage on llama-server ------------------------------------------------------------

@pytest.fixture()
def qwen_run(qwen_model, tmp_path):
    """A run folder as export leaves it: the merged model and its GGUF."""
    run = tmp_path / "outputs" / "qwen-run"
    (run / "gguf").mkdir(parents=True)
    shutil.copytree(qwen_model.model_dir, run / "merged")
    os.link(qwen_model.gguf, run / "gguf" / "model-q8_0.gguf")
    return run, qwen_model.cfg


def test_a_tool_capable_template_is_served_natively_and_proved_on_llama_server(
        qwen_run, server_binary) -> None:
    run, cfg = qwen_run
    call_format.record_trained(run / "lora", "qwen", None)  # the run trained <tool_call> text
    before = set(_llama_servers())
    ctx, events = stage_ctx(cfg, run)
    assert deploy_stage.run(ctx) == "ok"
    c = checks(events)
    assert c["deploy.tool_format"]["status"] == "pass", c["deploy.tool_format"]
    assert "the GGUF's chat template" in c["deploy.tool_format"]["value"]
    text = (run / "Modelfile").read_text()
    parsed = dict(modelfile_parser.parse(text))
    assert "template" not in parsed  # Ollama's native path: the GGUF's own template
    assert "parameter:stop" not in parsed  # <|im_end|> ends generation in the vocabulary
    assert parsed["parameter:num_ctx"] == "2048"
    assert c["deploy.modelfile"]["status"] == "pass", c["deploy.modelfile"]
    assert c["deploy.modelfile"]["detail"]["ollama_path"] == "native"
    assert "llama-server" in c["deploy.modelfile"]["detail"]["why"]
    assert c["deploy.create"]["status"] == "skip"
    smoke = c["deploy.smoke"]
    assert smoke["status"] == "pass", smoke
    assert smoke["value"].startswith("llama-server, native path")
    tool, neg = smoke["detail"]["answers"]
    assert tool["prompt_ok"] and neg["prompt_ok"]  # the server rendered training's prompt
    assert tool["calls"] == [{"name": "deploy_service",
                              "arguments": json.loads(TOOL_RECORD["output"])["arguments"]}]
    assert tool["finish_reason"] in ("stop", "tool_calls") and tool["content"] == ""
    assert neg["calls"] == [] and neg["content"] and neg["finish_reason"] == "stop"
    assert smoke["detail"]["startup_s"] > 0
    assert set(_llama_servers()) <= before  # nothing outlives the stage


def test_a_chatml_run_gets_a_tool_aware_template_and_ollamas_reading_of_its_answer(
        chatml_model, server_binary, tmp_path) -> None:
    ctx, events = stage_ctx(chatml_model.cfg, None)
    rend = prompts.renderer(chatml_model.model_dir, chatml_model.cfg)
    deploy_stage.deploy_model(ctx, chatml_model.gguf, rend, chatml_model.model_dir, tmp_path,
                              "tiny")
    c = checks(events)
    template = dict(modelfile_parser.parse((tmp_path / "Modelfile").read_text()))["template"]
    assert ".Tools" in template and ".ToolCalls" in template and '{"name": "' in template
    assert c["deploy.modelfile"]["status"] == "pass", c["deploy.modelfile"]
    assert "tool-less 'chatml'" in c["deploy.modelfile"]["detail"]["why"]
    smoke = c["deploy.smoke"]
    tool, neg = smoke["detail"]["answers"]
    assert tool["finish_reason"] == "stop" and neg["verdict"] == ""
    # The model answers exactly its training text, {"name", "arguments"}; Ollama's parser,
    # reading it, hands the client the right call.
    assert tool["calls"], tool
    assert tool["calls"] == [{"name": "deploy_service",
                              "arguments": json.loads(TOOL_RECORD["output"])["arguments"]}]
    assert smoke["status"] == "pass", smoke


def test_a_run_trained_on_another_format_fails_before_it_ships(qwen_run, monkeypatch,
                                                               tmp_path) -> None:
    run, cfg = qwen_run
    call_format.record_trained(run / "lora", "json", None)  # as if trained without the template
    monkeypatch.setenv(ls.ENV_BINARY, str(tmp_path / "no-llama-server"))  # no smoke needed
    ctx, events = stage_ctx(cfg, run)
    assert deploy_stage.run(ctx) == "failed"
    fmt = checks(events)["deploy.tool_format"]
    assert fmt["status"] == "fail"
    assert fmt["value"] == "trained on json, but the GGUF's chat template (llama.cpp's parser) parses qwen"


def test_an_answer_that_runs_to_the_token_limit_fails(qwen_model, server_binary,
                                                      tmp_path) -> None:
    cfg = {**qwen_model.cfg, "deploy": {**qwen_model.cfg["deploy"], "smoke_max_tokens": 3}}
    ctx, events = stage_ctx(cfg, None)
    rend = prompts.renderer(qwen_model.model_dir, cfg)
    deploy_stage.deploy_model(ctx, qwen_model.gguf, rend, qwen_model.model_dir, tmp_path, "t")
    smoke = checks(events)["deploy.smoke"]
    assert smoke["status"] == "fail"
    assert "did not stop (finish_reason 'length')" in smoke["value"]


def test_without_ollama_or_llama_server_the_steps_are_skipped_with_the_commands(
        qwen_run, monkeypatch, tmp_path) -> None:
    run, cfg = qwen_run
    monkeypatch.setenv(ls.ENV_BINARY, str(tmp_path / "no-llama-server"))
    ctx, events = stage_ctx(cfg, run)
    assert deploy_stage.run(ctx) == "ok"  # the Modelfile is proved; the rest is skipped
    c = checks(events)
    assert (run / "Modelfile").read_text().startswith("# Modelfile for run qwen-run")
    for item in ("deploy.create", "deploy.smoke"):
        assert c[item]["status"] == "skip"
        assert f"ollama create web4-coder -f {(run / 'Modelfile').resolve()}" in c[item]["detail"]
    assert "ollama run web4-coder" in c["deploy.smoke"]["detail"]
    assert c["deploy.docker"]["status"] == "skip"


def test_a_reachable_ollama_gets_the_model_created(qwen_run, tmp_path) -> None:
    run, cfg = qwen_run
    with StandIn(tmp_path / "ollama") as server:
        cfg = {**cfg, "deploy": {**cfg["deploy"], "ollama_host": server.url}}
        ctx, events = stage_ctx(cfg, run)
        deploy_stage.run(ctx)
        c = checks(events)
        assert c["deploy.create"]["status"] == "pass", c["deploy.create"]
        stored = server.models["web4-coder"]
        assert stored["template"] == ""  # native: no TEMPLATE sent
        assert stored["parameters"] == {"num_ctx": 2048}
        paths = [p for _, p in server.requests]
        assert "/api/create" in paths and "/api/show" in paths
        # The smoke test went to that Ollama (preferred), not to a llama-server of ours.
        assert "/api/chat" in paths
        assert server.url in c["deploy.smoke"]["detail"]


def test_a_bad_model_name_fails_before_anything_is_sent(qwen_run, tmp_path) -> None:
    run, cfg = qwen_run
    with StandIn(tmp_path / "ollama") as server:
        cfg = {**cfg, "deploy": {**cfg["deploy"], "ollama_host": server.url,
                                 "name": "web4 coder; rm -rf ~"}}
        ctx, events = stage_ctx(cfg, run)
        deploy_stage.run(ctx)
        c = checks(events)
        assert c["deploy.create"]["status"] == "fail"
        assert "Ollama model names" in c["deploy.create"]["detail"]
        assert server.requests == []


def test_deploy_gguf_reads_the_template_from_the_file_and_proves_it(qwen_model, server_binary,
                                                                    tmp_path, capsys) -> None:
    from engine import config
    from engine.deploy_cli import deploy_main

    conf = tmp_path / "config.toml"
    conf.write_text(config.dumps(qwen_model.cfg))
    assert deploy_main(str(qwen_model.gguf), "tiny-coder", str(tmp_path / "out"), str(conf),
                       []) == 0
    out = capsys.readouterr().out
    text = (tmp_path / "out" / "Modelfile").read_text()
    assert "\nTEMPLATE" not in text and "ollama create tiny-coder -f" in text
    assert "✓ PASS Modelfile for Ollama's path — native path" in out
    assert "✓ PASS Served answers" in out and 'tool_calls [{"name": "deploy_service"' in out
    assert deploy_main(str(tmp_path / "missing.gguf"), None, None, str(conf), []) == 2
