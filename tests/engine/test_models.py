"""Model resolution on the real embedded model (converted once, cached, shared safely)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine import models
from engine.models import ModelError

ROOT = Path(__file__).resolve().parents[2]


def test_default_model_becomes_a_plain_hf_folder_that_matches_the_gguf() -> None:
    import torch
    from transformers import AutoModelForCausalLM

    folder = models.resolve("default")
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg
    tok = models.load_tokenizer(folder)
    assert "<|im_start|>" in tok.chat_template and tok.eos_token == "<|im_end|>"
    # The same file through the .gguf path reuses the cache instead of converting again.
    assert models.resolve(str(models.default_gguf())) == folder

    plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    gguf = models.default_gguf()
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    ids = tok("def add(a, b):", return_tensors="pt").input_ids
    with torch.no_grad():
        a = plain(ids).logits
        b = direct(ids).logits
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


def test_two_processes_convert_once(tmp_path: Path) -> None:
    code = ("import sys; from engine import models\n"
            "calls = []\n"
            "p = models.resolve('default', sys.argv[1], lambda d, t, m: calls.append(m))\n"
            "print(p); print('converted' if calls else 'reused', flush=True)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0][0] == outs[1][0]
    assert sorted(o[1] for o in outs) == ["converted", "reused"]
    folders = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(folders) == 1  # no temp folders left behind


def test_clear_errors_for_missing_or_unreadable_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="GGUF file not found"):
        models.resolve(str(tmp_path / "nope.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        models.resolve(str(tmp_path / "empty"))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a gguf file")
    with pytest.raises(ModelError, match="could not read this GGUF"):
        models.resolve(str(junk), str(tmp_path / "cache"))
    with pytest.raises(ModelError, match="neither a folder"):
        models.resolve("not a model id!")


def test_hub_id_offline_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="huggingface-cli download"):
        models.resolve("web4tui-test/definitely-not-cached")


def test_check_reports_a_broken_model_without_traceback(tmp_path: Path) -> None:
    fix = ROOT / "tests" / "fixtures" / "good"
    proc = subprocess.run([sys.executable, "-m", "web4tui", "check", str(fix), "--set",
                           f"model.id='{tmp_path}'"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert "no config.json" in proc.stdout and "Traceback" not in proc.stderr
    assert "✓ PASS Valid JSONL" in proc.stdout  # the data itself is still checked
