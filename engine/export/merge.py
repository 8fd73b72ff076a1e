"""Merge a LoRA adapter into its base model and save a 16-bit Hugging Face folder.

The merged folder carries the tokenizer and chat template, so it is a complete model on its
own (the GGUF converter and ``transformers`` both load it). A fingerprint of the inputs is
written next to the weights; a second run with the same adapter, base and dtype reuses the
folder instead of merging again. The folder is built under a temporary name and renamed into
place, so an interrupted merge never leaves a half-written ``merged/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from engine.export import ExportError, Progress, no_progress
from engine.runs import atomic_dir

FINGERPRINT = ".web4tui-merge.json"
#: Bump when the merge itself changes, so old folders are not reused.
MERGE_VERSION = 1
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class MergeResult:
    path: Path
    reused: bool
    seconds: float
    dtype: str
    fingerprint: str


def _hash_file(h: hashlib._Hash, path: Path) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def fingerprint(base: Path, adapter: Path, dtype: str) -> str:
    """What the merged folder depends on: the adapter's bytes, the base's files, the dtype.

    The adapter is small and hashed in full; the base's weights are identified by name, size
    and modification time (hashing gigabytes on every export would cost more than it saves).
    """
    h = hashlib.sha256(f"merge-v{MERGE_VERSION}:{dtype}".encode())
    for f in sorted(p for p in adapter.iterdir() if p.is_file()):
        h.update(f.name.encode())
        _hash_file(h, f)
    h.update(str(base.resolve()).encode())
    for f in sorted(p for p in base.iterdir() if p.is_file()):
        st = f.stat()
        if f.suffix in _WEIGHT_SUFFIXES:
            h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
        elif f.suffix == ".json":
            h.update(f.name.encode())
            _hash_file(h, f)
    return h.hexdigest()[:16]


def check_adapter(adapter: Path) -> None:
    if not (adapter / "adapter_config.json").is_file():
        raise ExportError(f"{adapter}: no LoRA adapter here (adapter_config.json is missing); "
                          "train one first (stage 4 writes outputs/<run>/lora)")


def merge_adapter(base: Path, adapter: Path, out: Path, *, dtype: str = "bfloat16",
                  trust_remote_code: bool = False,
                  progress: Progress = no_progress) -> MergeResult:
    """Merge ``adapter`` into ``base`` (merge_and_unload) and save it to ``out`` in ``dtype``."""
    check_adapter(adapter)
    t0 = time.monotonic()
    fp = fingerprint(base, adapter, dtype)
    marker = out / FINGERPRINT
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("fingerprint") == fp:
                progress(1, 1, "merged model is up to date; reusing it")
                return MergeResult(out, True, time.monotonic() - t0, dtype, fp)
        except ValueError:
            pass

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    steps = 4
    progress(0, steps, f"loading the base model in {dtype}")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype,
                                                 trust_remote_code=trust_remote_code)
    progress(1, steps, "applying the adapter")
    model = PeftModel.from_pretrained(model, adapter)
    progress(2, steps, "merging (merge_and_unload)")
    model = model.merge_and_unload()
    # The adapter folder may carry its own tokenizer (added tokens, a template); prefer it.
    tok_src = adapter if (adapter / "tokenizer_config.json").is_file() else base
    tokenizer = AutoTokenizer.from_pretrained(tok_src, trust_remote_code=trust_remote_code)
    if not getattr(tokenizer, "chat_template", None):
        base_tok = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
        tokenizer.chat_template = getattr(base_tok, "chat_template", None)

    progress(3, steps, f"saving the merged model to {out}")
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, max_shard_size="4GB")
        tokenizer.save_pretrained(tmp)
        for extra in ("generation_config.json",):
            if (base / extra).is_file() and not (tmp / extra).exists():
                shutil.copy2(base / extra, tmp / extra)
        (tmp / FINGERPRINT).write_text(json.dumps(
            {"fingerprint": fp, "base": str(base), "adapter": str(adapter), "dtype": dtype},
            indent=2) + "\n")
    del model
    progress(steps, steps, "merged")
    return MergeResult(out, False, time.monotonic() - t0, dtype, fp)
