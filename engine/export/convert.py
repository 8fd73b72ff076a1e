"""Convert a Hugging Face folder (llama family, qwen2) to an f16 GGUF with ggml's ``gguf`` library.

Streaming: the GGUF header, metadata and tensor table are written first from the safetensors
headers alone; then each tensor is read, transformed and written, one at a time. Peak memory
is one tensor (in float32) plus the tokenizer, not the model.

What a GGUF needs beyond the weights, and where it comes from here:
- hyperparameters from ``config.json`` (rope base, scaling, head sizes, norm epsilon);
- the vocabulary in id order from ``tokenizer.json`` with each token's type (control tokens
  are the special added ones), padded to the model's embedding rows;
- merges, bos/eos/pad ids, add-bos/add-eos and the chat template (``gguf.SpecialVocab``);
- ``tokenizer.ggml.pre``, the pre-tokenizer llama.cpp applies before BPE. It is read from
  the pre-tokenizer definition of the tokenizer transformers actually runs (not guessed from
  a hash of its output), may be forced with ``export.pre_tokenizer``, and is then proved by
  tokenizing probe texts with both libraries (see :mod:`engine.export.parity`).

Llama checkpoints in HF store q/k rows in rotate-half order; llama.cpp's llama rope pairs
adjacent rows, so q and k are permuted per head. Qwen2 uses the NEOX rope in llama.cpp, which
matches the HF order: no permutation.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.export import ExportError, Progress, no_progress
from engine.models import rope_settings

log = logging.getLogger(__name__)

#: HF architecture → (GGUF architecture, families a user knows it by).
SUPPORTED: dict[str, tuple[str, str]] = {
    "LlamaForCausalLM": ("llama", "SmolLM2, DeepSeek-Coder, Llama 2, CodeLlama"),
    "Qwen2ForCausalLM": ("qwen2", "Qwen2, Qwen2.5, Qwen2.5-Coder"),
}

_QWEN2_SPLIT = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
                "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
_LLAMA3_SPLIT = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}"
                 "\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
#: The pre-tokenizer definitions llama.cpp implements under a name, as HF tokenizer.json
#: spells them (a tuple of steps, see :func:`pre_tokenizer_steps`).
KNOWN_PRE: dict[tuple[str, ...], str] = {
    ("bytelevel+regex",): "gpt-2",
    ("digits:individual", "bytelevel+regex"): "smollm",
    (f"split:{_QWEN2_SPLIT}", "bytelevel"): "qwen2",
    (f"split:{_LLAMA3_SPLIT}", "bytelevel"): "llama-bpe",
    ("split:[\r\n]", "split:\\s?\\p{L}+", "split:\\s?\\p{P}+",
     "split:[一-龥ࠀ-一가-퟿]+", "digits:individual", "bytelevel"): "deepseek-coder",
}
#: End-of-turn markers of the chat formats we deploy, marked as EOT in the GGUF.
END_OF_TURN = ("<|im_end|>", "<|EOT|>", "<|eot_id|>", "<|end|>")


@dataclass
class ConvertResult:
    path: Path
    arch: str
    pre: str
    pre_source: str  # "tokenizer.json" or "export.pre_tokenizer"
    n_tensors: int
    n_params: int
    bytes: int
    seconds: float
    eot_tokens: list[str] = field(default_factory=list)
    tool: str = "built-in (gguf-py)"


def architecture(model_dir: Path) -> tuple[str, str, dict[str, Any]]:
    """(HF architecture, GGUF architecture, config) — refusing unsupported ones by name."""
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise ExportError(f"{model_dir}: not a Hugging Face model folder (no config.json)")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    archs = cfg.get("architectures") or []
    hf_arch = archs[0] if archs else f"<model_type {cfg.get('model_type')}>"
    if hf_arch not in SUPPORTED:
        names = "; ".join(f"{a} ({fam})" for a, (_, fam) in SUPPORTED.items())
        raise ExportError(
            f"{model_dir}: architecture {hf_arch} is not supported by the built-in GGUF "
            f"converter (supported: {names}). Set export.convert_script to llama.cpp's "
            "convert_hf_to_gguf.py to convert it with llama.cpp instead")
    return hf_arch, SUPPORTED[hf_arch][0], cfg


def pre_tokenizer_steps(tokenizer_json: dict[str, Any]) -> tuple[str, ...]:
    """The tokenizer's pre-tokenizer as a tuple of steps, e.g. ("digits:individual", ...)."""
    pt = tokenizer_json.get("pre_tokenizer") or {}
    parts = pt.get("pretokenizers", []) if pt.get("type") == "Sequence" else [pt]
    steps: list[str] = []
    for p in parts:
        kind = p.get("type")
        if kind == "ByteLevel":
            steps.append("bytelevel+regex" if p.get("use_regex", True) else "bytelevel")
        elif kind == "Digits":
            steps.append("digits:individual" if p.get("individual_digits") else "digits")
        elif kind == "Split":
            pat = p.get("pattern") or {}
            steps.append("split:" + str(pat.get("Regex", pat.get("String", ""))))
        else:
            steps.append(str(kind))
    return tuple(steps)


def choose_pre(tokenizer_json: dict[str, Any], forced: str = "") -> tuple[str, str]:
    """(llama.cpp pre-tokenizer name, where the choice came from)."""
    if forced:
        return forced, "export.pre_tokenizer"
    steps = pre_tokenizer_steps(tokenizer_json)
    name = KNOWN_PRE.get(steps)
    if name is None:
        raise ExportError(
            "the tokenizer's pre-tokenizer is not one llama.cpp implements under a known name "
            f"(steps: {list(steps)}). Set export.pre_tokenizer to the llama.cpp name that "
            "matches it (e.g. gpt-2, smollm, qwen2, llama-bpe, deepseek-coder); the export then "
            "proves the choice by tokenizing probe texts with both libraries")
    return name, "tokenizer.json"


# --- hyperparameters ----------------------------------------------------------------------

def write_hparams(w: Any, arch: str, cfg: dict[str, Any], name: str) -> None:
    import gguf

    n_head = cfg["num_attention_heads"]
    n_embd = cfg["hidden_size"]
    head_dim = cfg.get("head_dim") or n_embd // n_head
    w.add_name(name)
    w.add_context_length(cfg.get("max_position_embeddings", 4096))
    w.add_embedding_length(n_embd)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(cfg.get("num_key_value_heads") or n_head)
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    w.add_vocab_size(cfg["vocab_size"])
    theta, scaling = rope_settings(cfg)
    w.add_rope_freq_base(theta)
    w.add_rope_dimension_count(head_dim)
    if head_dim != n_embd // n_head:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    if scaling:
        kind = scaling.get("rope_type") or scaling.get("type")
        factor = float(scaling.get("factor", 1.0))
        if kind == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(factor)
        elif kind == "yarn":
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(factor)
            w.add_rope_scaling_orig_ctx_len(int(scaling["original_max_position_embeddings"]))
        elif kind not in (None, "default"):
            raise ExportError(f"rope scaling {kind!r} is not supported by the built-in converter; "
                              "set export.convert_script to llama.cpp's convert_hf_to_gguf.py")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)


# --- tokenizer ----------------------------------------------------------------------------

@dataclass
class Vocab:
    tokens: list[str]
    types: list[int]
    eot_ids: list[tuple[int, str]]


def build_vocab(tokenizer_json: dict[str, Any], n_vocab: int) -> Vocab:
    import gguf

    model = tokenizer_json.get("model") or {}
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(
            [tokenizer_json.get("pre_tokenizer"), tokenizer_json.get("decoder")]):
        raise ExportError(
            f"the tokenizer is a {model.get('type')} tokenizer without byte-level BPE; the "
            "built-in converter handles byte-level BPE tokenizers (SmolLM2, Qwen2.5, "
            "DeepSeek-Coder). Set export.convert_script to llama.cpp's convert_hf_to_gguf.py")
    by_id: dict[int, tuple[str, int]] = {i: (t, gguf.TokenType.NORMAL)
                                         for t, i in model["vocab"].items()}
    for added in tokenizer_json.get("added_tokens", []):
        kind = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
        by_id[added["id"]] = (added["content"], kind)
    size = max(n_vocab, max(by_id) + 1)
    if size > n_vocab:
        raise ExportError(f"the tokenizer has {size} tokens but the model's embedding has only "
                          f"{n_vocab} rows; the model and tokenizer do not belong together")
    tokens, types = [], []
    for i in range(size):
        text, kind = by_id.get(i, (f"[PAD{i}]", gguf.TokenType.UNUSED))
        tokens.append(text)
        types.append(int(kind))
    eot = [(i, t) for i, t in enumerate(tokens) if t in END_OF_TURN]
    return Vocab(tokens, types, eot)


def _adds_special(model_dir: Path) -> tuple[bool, bool]:
    """Whether the HF tokenizer adds BOS / EOS on its own (what llama.cpp must repeat)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    with_special = tok("a b").input_ids
    plain = tok("a b", add_special_tokens=False).input_ids
    adds_bos = len(with_special) > len(plain) and with_special[0] == tok.bos_token_id
    adds_eos = len(with_special) > len(plain) and with_special[-1] == tok.eos_token_id
    return adds_bos, adds_eos


def runtime_tokenizer_json(model_dir: Path) -> dict[str, Any]:
    """The tokenizer as transformers actually runs it for this model, as tokenizer.json.

    Not the file on disk: transformers may rebuild a model family's tokenizer its own way
    (a Qwen2 model gets the Qwen2 pre-tokenizer whatever tokenizer.json says). Training and
    evaluation tokenized with this one, so the GGUF must describe this one.
    """
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_dir)
        return json.loads(tok.backend_tokenizer.to_str())
    except (AttributeError, OSError, ValueError) as exc:
        raise ExportError(f"{model_dir}: no fast tokenizer could be loaded ({exc}); the GGUF "
                          "converter needs tokenizer.json") from exc


def write_tokenizer(w: Any, model_dir: Path, cfg: dict[str, Any], pre: str,
                    tj: dict[str, Any]) -> Vocab:
    import gguf

    vocab = build_vocab(tj, cfg["vocab_size"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(vocab.tokens))
    adds_bos, adds_eos = _adds_special(model_dir)
    special.add_special_token["bos"] = adds_bos
    special.add_special_token["eos"] = adds_eos
    if not special.chat_template:
        raise ExportError(f"{model_dir}: the tokenizer has no chat template; a chat model "
                          "needs one (tokenizer_config.json or chat_template.jinja)")
    special.add_to_gguf(w, quiet=True)
    if vocab.eot_ids:
        w.add_eot_token_id(vocab.eot_ids[0][0])
    return vocab


# --- tensors ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorPlan:
    gguf_name: str
    file: Path
    hf_name: str
    shape: tuple[int, ...]
    f32: bool  # 1-D tensors (norms, biases) stay float32, as llama.cpp expects


def _weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / n for n in names]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir}: no .safetensors weights (save the model with "
                          "safe_serialization=True)")
    return files


def plan_tensors(model_dir: Path, arch: str, cfg: dict[str, Any]) -> list[TensorPlan]:
    import gguf

    arch_enum = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}[arch]
    names = gguf.get_tensor_name_map(arch_enum, cfg["num_hidden_layers"])
    tied = bool(cfg.get("tie_word_embeddings", False))
    plan: list[TensorPlan] = []
    for f in _weight_files(model_dir):
        for key, info in safetensors_header(f).items():
            if key.startswith("__") or key.endswith(".rotary_emb.inv_freq"):
                continue
            if key == "lm_head.weight" and tied:
                continue  # llama.cpp reuses token_embd when output.weight is absent
            new = names.get_name(key, try_suffixes=(".weight", ".bias"))
            if new is None:
                raise ExportError(f"{f.name}: tensor {key} has no GGUF name for {arch}; "
                                  f"this checkpoint is not a plain {arch} model")
            shape = tuple(info["shape"])
            plan.append(TensorPlan(new, f, key, shape, len(shape) == 1))
    return plan


_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file (names, dtypes, shapes, byte offsets)."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    header["__data_start__"] = 8 + n
    return header


def read_tensor(path: Path, header: dict[str, Any], key: str, out_dtype: Any) -> np.ndarray:
    """One tensor in ``out_dtype``, read through a memory map a block of rows at a time.

    Only the output array and one block of float32 rows are ever in memory (the embedding of
    a small model is a fifth of it; whole-tensor float32 temporaries would double the peak).
    bfloat16 is the upper half of a float32, so it widens exactly by a 16-bit shift.
    """
    info = header[key]
    if info["dtype"] not in _ST_DTYPES:
        raise ExportError(f"{path.name}: tensor {key} is {info['dtype']}; expected F32, F16 "
                          "or BF16 weights")
    start, end = info["data_offsets"]
    src_dtype = np.dtype(_ST_DTYPES[info["dtype"]])
    shape = tuple(info["shape"]) or (1,)
    raw = np.memmap(path, dtype=src_dtype, mode="r", offset=header["__data_start__"] + start,
                    shape=shape)
    out = np.empty(shape, dtype=out_dtype)
    row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    step = max(1, (1 << 22) // row)
    for i in range(0, shape[0], step):
        block = raw[i:i + step]
        wide = ((block.astype(np.uint32) << 16).view(np.float32) if info["dtype"] == "BF16"
                else block.astype(np.float32))
        conv = wide.astype(out_dtype)
        if not np.isfinite(conv).all():
            raise ExportError(f"tensor {key} has values outside {np.dtype(out_dtype).name}'s "
                              "range; this model cannot be exported to an f16 GGUF as is")
        out[i:i + step] = conv
    del raw
    return out.reshape(info["shape"]) if info["shape"] else out


def _permute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half row order → llama.cpp's adjacent pairs, per head (weights or biases)."""
    rows = w.shape[0]
    rest = w.shape[1:]
    return (w.reshape(n_head, 2, rows // n_head // 2, *rest)
            .swapaxes(1, 2).reshape(rows, *rest))


def transform(t: TensorPlan, data: np.ndarray, arch: str, cfg: dict[str, Any]) -> np.ndarray:
    """Reorder q/k rows for llama's rope (a pure permutation, exact in any dtype)."""
    if arch == "llama":
        n_head = cfg["num_attention_heads"]
        n_kv = cfg.get("num_key_value_heads") or n_head
        if t.hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = _permute_rope_rows(data, n_head)
        elif t.hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = _permute_rope_rows(data, n_kv)
    return np.ascontiguousarray(data)


def convert(model_dir: Path, out: Path, *, pre_tokenizer: str = "", name: str = "",
            progress: Progress = no_progress) -> ConvertResult:
    """Write ``out`` (an f16 GGUF) from the HF folder ``model_dir``; atomic (temp + rename)."""
    import gguf

    t0 = time.monotonic()
    hf_arch, arch, cfg = architecture(model_dir)
    tj = runtime_tokenizer_json(model_dir)
    pre, pre_source = choose_pre(tj, pre_tokenizer)
    plan = plan_tensors(model_dir, arch, cfg)
    progress(0, len(plan), f"converting {len(plan)} tensors ({hf_arch} → {arch})")

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        write_hparams(writer, arch, cfg, name or model_dir.name)
        vocab = write_tokenizer(writer, model_dir, cfg, pre, tj)
        n_params = 0
        for t in plan:
            n = int(np.prod(t.shape))
            n_params += n
            dtype = np.float32 if t.f32 else np.float16
            writer.add_tensor_info(t.gguf_name, t.shape, np.dtype(dtype),
                                   n * np.dtype(dtype).itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        headers: dict[Path, dict[str, Any]] = {}
        for i, t in enumerate(plan):
            if t.file not in headers:
                headers[t.file] = safetensors_header(t.file)
            data = read_tensor(t.file, headers[t.file], t.hf_name,
                               np.float32 if t.f32 else np.float16)
            writer.write_tensor_data(transform(t, data, arch, cfg))
            del data
            progress(i + 1, len(plan), t.gguf_name)
        writer.close()
        os.chmod(tmp, 0o644)  # mkstemp makes it private; Ollama and docker read it too
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return ConvertResult(out, arch, pre, pre_source, len(plan), n_params, out.stat().st_size,
                         time.monotonic() - t0, [t for _, t in vocab.eot_ids])


def convert_with_script(script: Path, model_dir: Path, out: Path, *,
                        progress: Progress = no_progress) -> ConvertResult:
    """Run llama.cpp's own ``convert_hf_to_gguf.py`` (argument list, never a shell string)."""
    t0 = time.monotonic()
    if not script.is_file():
        raise ExportError(f"export.convert_script {script} does not exist")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.script.tmp")
    cmd = [sys.executable, str(script), str(model_dir), "--outfile", str(tmp), "--outtype", "f16"]
    progress(0, 1, "running " + " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        log.info("convert script: %s", line.rstrip())
        progress(0, 1, line.strip()[:120])
    if proc.wait() != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise ExportError(f"{script.name} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    os.replace(tmp, out)
    meta = read_metadata(out)
    progress(1, 1, "converted by llama.cpp's script")
    return ConvertResult(out, meta["arch"], meta["pre"], "convert script", meta["n_tensors"],
                         meta["n_params"], out.stat().st_size, time.monotonic() - t0,
                         tool=f"llama.cpp script {script}")


def read_metadata(path: Path) -> dict[str, Any]:
    """Architecture, pre-tokenizer, tensor count, parameters and data bytes of a GGUF."""
    import gguf

    r = gguf.GGUFReader(path)

    def text(key: str) -> str:
        f = r.fields.get(key)
        return f.contents() if f is not None else ""

    n_params = sum(int(t.n_elements) for t in r.tensors)
    data_bytes = sum(int(t.n_bytes) for t in r.tensors)
    return {"arch": text("general.architecture"), "pre": text("tokenizer.ggml.pre"),
            "file_type": r.fields["general.file_type"].contents()
            if "general.file_type" in r.fields else None,
            "n_tensors": len(r.tensors), "n_params": n_params, "data_bytes": data_bytes,
            "chat_template": text("tokenizer.chat_template")}
