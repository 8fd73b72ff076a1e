"""An evaluation keeps every answer as it arrives: stopped or killed half-way, the next run
generates only what is missing and scores exactly what an uninterrupted run scores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import config, models
from engine.evaluate import core, generate, sources
from tests.support.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "data" / "eval"


def _cfg(*sets: str) -> dict:
    return config.load(None, ["eval.max_per_bucket=2", "eval.max_new_tokens=6",
                              "eval.batch_size=2", "train.device=cpu",
                              f"data.tools={json.dumps(str(ROOT / 'data' / 'tools.json'))}",
                              f"eval.ruff_config={json.dumps(str(ROOT / 'data' / 'ruff.toml'))}",
                              *sets])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("resume") / "tiny")


def test_a_stopped_evaluation_resumes_from_its_kept_answers(tiny: Path, tmp_path: Path,
                                                            monkeypatch) -> None:
    generated: list[int] = []
    real = generate.encode_prompts
    monkeypatch.setattr(generate, "encode_prompts",
                        lambda tok, prompts: generated.append(len(prompts)) or real(tok, prompts))
    cfg = _cfg()
    records = core.select(core.load_records([EVAL])[0], 2)
    assert len(records) == 10
    src = sources.open_hf(tiny, cfg)
    fresh = core.evaluate(records, src, cfg, keep=tmp_path / "fresh")
    assert generated == [10]

    folder, notes = tmp_path / "stopped", []
    answers = folder / "answers.jsonl"
    src.should_stop = lambda: answers.is_file() and len(answers.read_text().splitlines()) >= 4
    core.evaluate(records, src, cfg, keep=folder, note=notes.append)
    assert len(answers.read_text().splitlines()) == 4  # two batches of two, kept at once
    src.should_stop = lambda: False
    resumed = core.evaluate(records, src, cfg, keep=folder, note=notes.append)
    assert generated == [10, 10, 6]  # the second run asked only for the six missing
    assert notes == [f"reusing 4 of 10 answers already in {answers}"]
    assert [r.answer for r in resumed.rows] == [r.answer for r in fresh.rows]
    assert [r.prompt for r in resumed.rows] == [r.prompt for r in fresh.rows]
    assert resumed.metrics == fresh.metrics
    assert sources.PredictionsSource(answers)(records) == [r.answer for r in fresh.rows]

    core.evaluate(records, src, _cfg("eval.max_new_tokens=5"), keep=folder, note=notes.append)
    assert generated[-1] == 10 and "other settings: starting over" in notes[-1]
    core.evaluate(records[:9], src, _cfg("eval.max_new_tokens=5"), keep=folder,
                  note=notes.append)
    assert generated[-1] == 9 and "other records: starting over" in notes[-1]


def _evaluate(*args: str, outputs: Path) -> subprocess.Popen:
    env = {**os.environ, "WEB4TUI_OUTPUTS": str(outputs), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "web4tui", "evaluate", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: the kill reaches the engine


def test_a_killed_gguf_evaluation_reuses_every_answer_written(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    gguf = str(models.default_gguf())
    small = ["--set", "eval.max_per_bucket=2", "--set", "eval.max_new_tokens=24",
             "--set", "eval.progress_every_s=0.01"]
    out = tmp_path / "killed"
    answers = out / "answers.jsonl"
    proc = _evaluate("--gguf", gguf, "--out", str(out), *small, outputs=tmp_path / "o")
    deadline = time.monotonic() + 300
    while not (answers.is_file() and len(answers.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # web4tui and the engine process it runs
    proc.wait()
    kept = [json.loads(x) for x in answers.read_text().splitlines() if x.endswith("}")]
    assert 3 <= len(kept) < 10

    again = _evaluate("--gguf", gguf, "--out", str(out), *small, outputs=tmp_path / "o")
    _, err = again.communicate(timeout=600)
    assert again.returncode in (0, 1), err
    assert f"reusing {len(kept)} of 10 answers" in err
    lines = [json.loads(x) for x in answers.read_text().splitlines()]
    assert len(lines) == 10 and lines[:len(kept)] == kept  # each record generated once
    assert "answering: 10/10 records" in err  # progress lines although stderr is a pipe

    whole = _evaluate("--gguf", gguf, "--out", str(tmp_path / "whole"), *small,
                      outputs=tmp_path / "o")
    whole.communicate(timeout=600)
    rows = lambda d: [(r["id"], r["answer"]) for r in map(
        json.loads, (d / "records.jsonl").read_text().splitlines())]
    assert rows(out) == rows(tmp_path / "whole")
