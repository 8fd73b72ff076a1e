"""Stage 6 — export: merge the run's adapter, convert to GGUF, quantize, prove each step.

    lora/ ──merge_and_unload──▶ merged/ (16-bit HF) ──gguf-py──▶ gguf/model-f16.gguf
          ──llama.cpp quantizer──▶ gguf/model-<quant>.gguf

Every step is reused when its inputs have not changed (a second export is quick), reports
progress, and is proved: llama.cpp must reproduce the HF model's greedy next tokens on the
eval prompts (and tokenize them identically); the quantized file's size and bits per weight
are measured; the stage-5 scores of the quantized GGUF must stay within ±N points of the
merged model's.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from engine import models
from engine.export import ExportError, eval_parity, merge, parity, prompts
from engine.export import convert as conv
from engine.export import quantize as quant
from engine.stages.base import StageContext, skip_stage

#: Bump when the converter's output changes, so old GGUFs are rebuilt.
CONVERTER_VERSION = 1


class Reporter:
    """progress(done, total, message) → throttled ``progress`` events with an ETA."""

    def __init__(self, ctx: StageContext, unit: str, every_s: float = 0.25) -> None:
        self.ctx, self.unit, self.every = ctx, unit, every_s
        self.t0 = time.monotonic()
        self.last = 0.0

    def __call__(self, done: float, total: float, message: str) -> None:
        now = time.monotonic()
        final = total and done >= total
        if not final and now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.t0
        eta = elapsed * (total - done) / done if done and total else None
        self.ctx.emit("progress", done=done, total=total, unit=self.unit,
                      eta_s=round(eta, 1) if eta is not None else None, message=message)


def run(ctx: StageContext) -> str:
    if ctx.run_dir is None:
        return skip_stage(ctx, "export", "no run folder: use `web4tui export --model DIR` to "
                                         "convert a model without a run")
    run_dir = Path(ctx.run_dir)
    adapter = run_dir / "lora"
    if not (adapter / "adapter_config.json").is_file():
        return skip_stage(ctx, "export", f"no adapter at {adapter}: train the run first (stage 4 "
                                         "writes it), or convert any model with "
                                         "`web4tui export --model DIR`")
    cfg = ctx.cfg
    ctx.emit("log", level="info", message=f"resolving the base model {models.describe(cfg)}")
    base = models.resolve(cfg["model"]["id"], cfg["model"]["cache_dir"],
                          Reporter(ctx, "steps"))
    ctx.raise_if_stopped()
    try:
        res = merge.merge_adapter(base, adapter, run_dir / "merged",
                                  dtype=cfg["export"]["merge_dtype"],
                                  trust_remote_code=cfg["model"]["trust_remote_code"],
                                  progress=Reporter(ctx, "steps"))
    except ExportError as exc:
        ctx.check("export.merge", "fail", detail=str(exc))
        return _skip_rest(ctx, ["export.gguf", "export.quantize", "export.parity"],
                          "the merge failed")
    size = sum(f.stat().st_size for f in res.path.glob("*.safetensors"))
    ctx.check("export.merge", "pass",
              value=f"{res.dtype} HF folder, {size / 1e6:.0f} MB"
                    + (" (reused: inputs unchanged)" if res.reused else f", {res.seconds:.1f} s"),
              detail={"path": str(res.path), "reused": res.reused, "seconds": round(res.seconds, 2),
                      "fingerprint": res.fingerprint, "base": str(base), "adapter": str(adapter)})
    ctx.emit("artifact", kind="merged", path=str(res.path))
    ctx.raise_if_stopped()
    return export_model(ctx, res.path, run_dir / "gguf", stem="model")


def _skip_rest(ctx: StageContext, items: list[str], why: str) -> str:
    for item in items:
        ctx.check(item, "skip", detail=why)
    return ctx.status_from_checks()


def source_key(model_dir: Path, *parts: Any) -> str:
    """What a GGUF depends on: the model folder's files (merge fingerprint when there is one)."""
    h = hashlib.sha256(json.dumps([CONVERTER_VERSION, *map(str, parts)]).encode())
    marker = model_dir / merge.FINGERPRINT
    if marker.is_file():
        h.update(marker.read_bytes())
    else:
        for f in sorted(p for p in model_dir.iterdir() if p.is_file()):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def _up_to_date(out: Path, key: str) -> bool:
    side = out.with_name(out.name + ".source.json")
    try:
        return out.is_file() and json.loads(side.read_text()).get("key") == key
    except (OSError, ValueError):
        return False


def _mark(out: Path, key: str, **info: Any) -> None:
    from engine.runs import atomic_write_json

    atomic_write_json(out.with_name(out.name + ".source.json"), {"key": key, **info})


def convert_step(ctx: StageContext, model_dir: Path, out: Path) -> tuple[conv.ConvertResult, bool]:
    ex = ctx.cfg["export"]
    script = ex["convert_script"]
    key = source_key(model_dir, ex["pre_tokenizer"], script)
    if _up_to_date(out, key):
        meta = conv.read_metadata(out)
        return conv.ConvertResult(out, meta["arch"], meta["pre"], "reused", meta["n_tensors"],
                                  meta["n_params"], out.stat().st_size, 0.0), True
    report = Reporter(ctx, "tensors")
    if script:
        result = conv.convert_with_script(Path(script).expanduser(), model_dir, out,
                                          progress=report)
    else:
        result = conv.convert(model_dir, out, pre_tokenizer=ex["pre_tokenizer"],
                              name=model_dir.name, progress=report)
    _mark(out, key, tool=result.tool)
    return result, False


def quantize_step(ctx: StageContext, f16: Path, out: Path, kind: str) -> tuple[quant.QuantResult, bool]:
    st = f16.stat()
    key = hashlib.sha256(f"{f16.name}:{st.st_size}:{st.st_mtime_ns}:{kind}".encode()).hexdigest()[:16]
    if _up_to_date(out, key):
        meta = conv.read_metadata(out)
        bpw = meta["data_bytes"] * 8 / max(1, meta["n_params"])
        return quant.QuantResult(out, kind, out.stat().st_size, st.st_size, meta["n_params"],
                                 bpw, 0.0), True
    result = quant.quantize(f16, out, kind, threads=ctx.cfg["export"]["threads"],
                            progress=Reporter(ctx, "bytes"))
    _mark(out, key, quant=kind)
    return result, False


def export_model(ctx: StageContext, model_dir: Path, gguf_dir: Path, *, stem: str) -> str:
    """Convert, quantize and prove one HF folder (a merged run model or any --model folder)."""
    ex = ctx.cfg["export"]
    kind = ex["quant"]
    f16_path = gguf_dir / f"{stem}-f16.gguf"
    q_path = gguf_dir / f"{stem}-{kind}.gguf"
    try:
        converted, reused = convert_step(ctx, model_dir, f16_path)
    except ExportError as exc:
        ctx.check("export.gguf", "fail", detail=str(exc))
        return _skip_rest(ctx, ["export.quantize", "export.parity"], "the conversion failed")
    ctx.emit("artifact", kind="gguf", path=str(converted.path))
    ctx.emit("log", level="info", message=(
        f"GGUF f16 {'reused' if reused else 'written'}: {converted.path} "
        f"({converted.bytes / 1e6:.1f} MB, {converted.arch}, pre-tokenizer {converted.pre!r} "
        f"from {converted.pre_source}{'' if reused else f', {converted.seconds:.1f} s'})"))
    ctx.raise_if_stopped()

    try:
        quantized, q_reused = quantize_step(ctx, converted.path, q_path, kind)
    except ExportError as exc:
        quantized = None
        q_error = str(exc)
    ctx.raise_if_stopped()

    texts, records = prompts.parity_prompts(model_dir, ctx.cfg, ex["parity_prompts"])
    ggufs = {"f16": converted.path}
    if quantized:
        ggufs[kind] = quantized.path
    rep = parity.next_token_parity(model_dir, ggufs, texts, max_tokens=ex["parity_max_tokens"],
                                   progress=Reporter(ctx, "prompts"),
                                   stop=ctx.stop_requested)
    ctx.raise_if_stopped()
    f16 = rep.side("f16")
    target = ex["min_token_agreement"]
    ok = f16.agreement >= target and not rep.tokenizer_mismatches
    value = (f"{f16.agreement:.2%} greedy next-token agreement ({f16.positions} positions, "
             f"{rep.prompts} prompts), max |Δlogit| {f16.max_abs_diff:.4f}; tokenizer "
             + ("identical" if not rep.tokenizer_mismatches else
                f"differs on {len(rep.tokenizer_mismatches)}/{rep.tokenizer_checked} texts"))
    ctx.check("export.gguf", "pass" if ok else "fail", value=value,
              detail={"path": str(converted.path), "arch": converted.arch,
                      "pre_tokenizer": converted.pre, "pre_source": converted.pre_source,
                      "converter": converted.tool, "reused": reused,
                      "seconds": round(converted.seconds, 2), "bytes": converted.bytes,
                      "parity": rep.to_dict()})

    if quantized is None:
        ctx.check("export.quantize", "fail", detail=q_error)
    else:
        ctx.emit("artifact", kind="gguf", path=str(quantized.path))
        q_side = rep.side(kind)
        ctx.check("export.quantize", "pass",
                  value=quantized.summary() + (" (reused)" if q_reused else ""),
                  detail={"path": str(quantized.path), "bytes": quantized.bytes,
                          "f16_bytes": quantized.source_bytes,
                          "bits_per_weight": round(quantized.bits_per_weight, 3),
                          "params": quantized.n_params, "seconds": round(quantized.seconds, 2),
                          "next_token_agreement_vs_hf": round(q_side.agreement, 4),
                          "max_abs_logit_diff_vs_hf": round(q_side.max_abs_diff, 4)})
    _eval_parity(ctx, model_dir, quantized, records, rep)
    return ctx.status_from_checks()


def _eval_parity(ctx: StageContext, model_dir: Path, quantized: quant.QuantResult | None,
                 records: list[Any], rep: parity.ParityReport) -> None:
    ex = ctx.cfg["export"]
    if quantized is None:
        ctx.check("export.parity", "skip", detail="no quantized GGUF to evaluate")
        return
    scorer = eval_parity.find_scorer()
    from engine.evaluate.core import select

    all_records = select(prompts.eval_records(ctx.cfg) or list(records),
                         ex["parity_eval_per_bucket"])
    stop_ids, stop_texts = _stops(model_dir)
    n = ex["eval_max_new_tokens"]
    merged_scores = scorer(all_records, eval_parity.hf_generate(
        model_dir, max_new_tokens=n, stop_ids=stop_ids), ctx.cfg)
    gguf_scores = scorer(all_records, eval_parity.gguf_generate(
        quantized.path, model_dir, max_new_tokens=n, stops=stop_texts), ctx.cfg)
    rows = eval_parity.compare(merged_scores, gguf_scores, ex["parity_points"])
    worst = max((abs(r.diff) for r in rows), default=0.0)
    ok = all(r.ok for r in rows) and bool(rows)
    ctx.check("export.parity", "pass" if ok else "fail",
              value=f"largest difference {worst:.1f} points over {len(rows)} metrics",
              detail={"table": eval_parity.table(rows),
                      "rows": [r.__dict__ | {"diff": r.diff} for r in rows]},
              measured=float(worst))


def _stops(model_dir: Path) -> tuple[list[int], list[str]]:
    """The stop token ids and texts of a model: the ones stage 5 stops at
    (:mod:`engine.stops`), so both sides of the parity check cut answers where it does."""
    from engine.stops import stop_ids, stop_tokens

    tok = models.load_tokenizer(model_dir)
    return stop_ids(tok, model_dir), stop_tokens(tok, model_dir)
