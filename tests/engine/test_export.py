"""Stage 6 on tiny models: merge, GGUF (llama and qwen2), parity with llama.cpp, quantize."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.export import convert as conv
from engine.export import eval_parity
from engine.stages import export as export_stage
from tests.support.export_fixtures import (  # noqa: F401 (fixtures)
    checks,
    run_config,
    stage_ctx,
    tiny_base,
    trained_run,
)
from tests.support.tiny_models import build_tiny

ROOT = Path(__file__).resolve().parents[2]


def test_export_stage_merges_converts_quantizes_and_proves_parity(trained_run) -> None:
    run, cfg = trained_run
    ctx, events = stage_ctx(cfg, run)
    assert export_stage.run(ctx) == "ok"
    c = checks(events)
    assert c["export.merge"]["status"] == "pass"
    merged = run / "merged"
    assert (merged / "model.safetensors").exists() and (merged / "chat_template.jinja").exists()
    assert json.loads((merged / "config.json").read_text())["dtype"] == "bfloat16"

    gguf = c["export.gguf"]
    assert gguf["status"] == "pass", gguf
    parity = gguf["detail"]["parity"]
    f16 = parity["sides"][0]
    assert f16["agreement"] >= 0.99 and f16["positions"] > 500
    assert parity["tokenizer_mismatches"] == [] and parity["tokenizer_texts_checked"] >= 10
    assert gguf["detail"]["pre_tokenizer"] == "gpt-2"  # what this tokenizer.json does
    assert "max |Δlogit|" in gguf["value"]

    q = c["export.quantize"]
    assert q["status"] == "pass" and 7.5 < q["detail"]["bits_per_weight"] < 9.5
    assert (run / "gguf" / "model-q8_0.gguf").exists()
    # The stage-5 scorers on the merged model and on the quantized GGUF, metric by metric.
    assert c["export.parity"]["status"] == "pass", c["export.parity"]
    assert "merged" in c["export.parity"]["detail"]["table"]
    assert {r["metric"] for r in c["export.parity"]["detail"]["rows"]} >= {"tool.json_valid",
                                                                         "guardrail.accuracy"}
    kinds = [e["kind"] for e in events if e["type"] == "artifact"]
    assert kinds == ["merged", "gguf", "gguf"]
    assert any(e["type"] == "progress" for e in events)

    # A second export with nothing changed reuses every step: no file is written again.
    written = {p: p.stat().st_mtime_ns for p in [merged / "model.safetensors",
                                                  *(run / "gguf").glob("*.gguf")]}
    ctx2, events2 = stage_ctx(cfg, run)
    assert export_stage.run(ctx2) == "ok"
    c2 = checks(events2)
    assert c2["export.merge"]["detail"]["reused"] is True
    assert c2["export.gguf"]["detail"]["reused"] is True
    assert "(reused)" in c2["export.quantize"]["value"]
    assert {p: p.stat().st_mtime_ns for p in written} == written


def test_no_adapter_skips_the_stage_with_what_to_do(tmp_path: Path, tiny_base: Path) -> None:
    cfg = run_config(tiny_base, tmp_path)
    ctx, events = stage_ctx(cfg, tmp_path)
    assert export_stage.run(ctx) == "skipped"
    c = checks(events)
    assert {v["status"] for v in c.values()} == {"skip"}
    assert "web4tui export --model" in c["export.gguf"]["detail"]


def test_qwen2_model_converts_and_matches_llama_cpp(tmp_path: Path) -> None:
    template = (ROOT / "tests/fixtures/chat_templates/qwen2.5-coder.jinja").read_text()
    model = build_tiny(tmp_path / "qwen", "qwen2", chat_template=template)
    cfg = run_config(model, tmp_path, quant="q4_k_m")
    ctx, events = stage_ctx(cfg, None)
    export_stage.export_model(ctx, model, tmp_path / "gguf", stem="qwen")
    c = checks(events)
    assert c["export.gguf"]["status"] == "pass", c["export.gguf"]
    meta = conv.read_metadata(tmp_path / "gguf" / "qwen-f16.gguf")
    assert meta["arch"] == "qwen2" and meta["chat_template"] == template
    assert c["export.quantize"]["status"] == "pass"
    assert 4.0 < c["export.quantize"]["detail"]["bits_per_weight"] < 9.0


def test_a_wrong_pre_tokenizer_is_caught(tmp_path: Path, tiny_base: Path) -> None:
    cfg = run_config(tiny_base, tmp_path, pre_tokenizer="qwen2")
    ctx, events = stage_ctx(cfg, None)
    export_stage.export_model(ctx, tiny_base, tmp_path / "gguf", stem="m")
    gguf = checks(events)["export.gguf"]
    assert gguf["status"] == "fail"
    assert gguf["detail"]["pre_source"] == "export.pre_tokenizer"
    assert gguf["detail"]["parity"]["tokenizer_mismatches"]


def test_user_convert_script_is_used(tmp_path: Path, tiny_base: Path) -> None:
    calls = tmp_path / "calls.json"
    script = tmp_path / "convert_hf_to_gguf.py"
    script.write_text(
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"open({str(calls)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "from pathlib import Path\n"
        "from engine.export.convert import convert\n"
        "a = sys.argv[1:]\n"
        "convert(Path(a[0]), Path(a[a.index('--outfile') + 1]))\n")
    cfg = run_config(tiny_base, tmp_path, convert_script=str(script))
    ctx, events = stage_ctx(cfg, None)
    export_stage.export_model(ctx, tiny_base, tmp_path / "gguf", stem="m")
    argv = json.loads(calls.read_text())
    assert argv[0] == str(tiny_base) and argv[-2:] == ["--outtype", "f16"]
    gguf = checks(events)["export.gguf"]
    assert gguf["status"] == "pass" and "llama.cpp script" in gguf["detail"]["converter"]


def test_unsupported_architecture_is_refused_by_name(tmp_path: Path, tiny_base: Path) -> None:
    folder = tmp_path / "gpt2ish"
    folder.mkdir()
    cfg = json.loads((tiny_base / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (folder / "config.json").write_text(json.dumps(cfg))
    proc = subprocess.run([sys.executable, "-m", "web4tui", "export", "--model", str(folder)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "GPT2LMHeadModel is not supported" in proc.stderr
    assert "convert_script" in proc.stderr and "Traceback" not in proc.stderr


def test_export_any_model_folder_from_the_command_line_in_an_empty_folder(
        tmp_path: Path, tiny_base: Path) -> None:
    # Run from a folder that holds nothing: the eval records, tools and house lint config
    # come from the project, the GGUF lands in ./outputs/exports/<model>/.
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-m", "web4tui", "export", "--model", str(tiny_base),
                           "--quant", "q4_k_m",
                           "--set", "export.parity_prompts=3",
                           "--set", "export.parity_eval_per_bucket=2",
                           "--set", "export.eval_max_new_tokens=16"],
                          capture_output=True, text=True, cwd=empty, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "✓ PASS Converted to GGUF" in proc.stdout
    assert "✓ PASS Quantized q4_k_m" in proc.stdout
    assert "- SKIP Merged" in proc.stdout
    assert "✓ PASS GGUF eval within" in proc.stdout, proc.stdout  # scored on data/eval
    assert "ruff configuration not found" not in proc.stderr
    assert (empty / "outputs" / "exports" / "llama" / "llama-q4_k_m.gguf").exists()


def test_score_comparison_allows_one_point_and_shows_the_table() -> None:
    rows = eval_parity.compare({"tool_json_valid": 0.95, "tool_correct": 0.90},
                               {"tool_json_valid": 0.945, "tool_correct": 0.87}, 1.0)
    assert [r.ok for r in rows] == [False, True]
    text = eval_parity.table(rows)
    assert "tool_correct" in text and "-3.0" in text and "✗" in text


def test_eval_parity_runs_the_scorer_on_both_models(trained_run, monkeypatch) -> None:
    run, cfg = trained_run
    seen: list[int] = []

    def score_records(records, generate, cfg):  # the stage-5 interface
        outs = generate([r.instruction for r in records[:2]])
        seen.append(len(outs))
        return {"tool_json_valid": 1.0}

    monkeypatch.setattr(eval_parity, "find_scorer", lambda: score_records)
    ctx, events = stage_ctx({**cfg, "export": {**cfg["export"], "eval_max_new_tokens": 8}}, run)
    assert export_stage.run(ctx) == "ok"
    parity = checks(events)["export.parity"]
    assert parity["status"] == "pass" and seen == [2, 2]
    assert "tool_json_valid" in parity["detail"]["table"]


def test_gguf_answers_reuse_the_shared_prefix_and_equal_fresh_ones(trained_run) -> None:
    """Evaluation keeps llama.cpp's cache between prompts: the answers must not change."""
    from engine.evaluate import core
    from engine.evaluate.gguf_source import GGUFSource, row_block

    run, cfg = trained_run
    gguf = run / "gguf" / "model-q8_0.gguf"
    if not gguf.exists():
        export_stage.run(stage_ctx(cfg, run)[0])
    records = core.select(core.load_records(cfg["data"]["eval"])[0], 2)
    source = GGUFSource(gguf, dict(cfg, eval=dict(cfg["eval"], max_new_tokens=12)))
    read: list[int] = []  # prompt tokens llama.cpp read, per call of eval
    evaluate = source.llm.eval
    source.llm.eval = lambda tokens: (read.append(len(tokens)), evaluate(tokens))[1]
    shared = source(records)
    prompts = [source.llm.tokenize(p.encode(), add_bos=False, special=True)
               for p in source.last_prompts]
    common = next(k for k in range(min(map(len, prompts)) + 1)  # the system prompt at least
                  if k == min(map(len, prompts)) or len({p[k] for p in prompts}) > 1)
    kept_reads = sum(n for n in read if n > 1)  # answer tokens are read one at a time
    fresh = []
    for rec in records:
        source.llm.reset()  # what every prompt used to pay for
        fresh.append(source([rec])[0])
    assert shared == fresh and len(shared) == len(records)
    block = row_block(source.llm)  # the cut, for this llama.cpp build
    assert common > 8 and kept_reads <= sum(map(len, prompts)) - (len(prompts) - 1) * (
        common // block * block), (kept_reads, common)
