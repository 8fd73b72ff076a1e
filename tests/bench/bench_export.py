"""Stage 6 cost on the default model (SmolLM2-135M-Instruct): merge + convert + quantize.

    python tests/bench/bench_export.py [--quant q4_k_m] [--work DIR]

Builds a LoRA adapter (r=8 on q,k,v,o, non-zero weights) on the embedded default model, then
runs each export step in its own fresh process and prints, for each: wall time, peak memory
(the process's max RSS) and peak memory *above the process's own baseline* (interpreter and
libraries loaded before the step's work), against the model's size. Then the total of
merge + convert + quantize against the 60 s target, the sizes and bits per weight, and the
llama.cpp/HF parity on the eval prompts. Absolute times drift between runs; compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = 8

PRELUDE = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

STEPS = {
    "adapter": r"""
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from engine import models
base = models.resolve("default")
base_rss = rss_mb(); t0 = time.perf_counter()
torch.manual_seed(0)
m = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
p = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, init_lora_weights=False,
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
with torch.no_grad():
    for n, w in p.named_parameters():
        if "lora_" in n: w.mul_(0.1)
p.save_pretrained(sys.argv[1] + "/lora")
print(json.dumps({"base": str(base), "seconds": time.perf_counter() - t0,
                  "peak_mb": rss_mb(), "baseline_mb": base_rss}))
""",
    "merge": r"""
import torch, peft, transformers
from engine import models
from engine.export.merge import merge_adapter
base = models.resolve("default")
base_rss = rss_mb(); t0 = time.perf_counter()
r = merge_adapter(base, Path(sys.argv[1]) / "lora", Path(sys.argv[1]) / "merged")
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": rss_mb(),
                  "baseline_mb": base_rss, "reused": r.reused}))
""",
    "convert": r"""
import gguf, numpy, transformers
from engine.export.convert import convert
base_rss = rss_mb(); t0 = time.perf_counter()
r = convert(Path(sys.argv[1]) / "merged", Path(sys.argv[1]) / "model-f16.gguf")
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": rss_mb(),
                  "baseline_mb": base_rss, "bytes": r.bytes, "params": r.n_params,
                  "pre": r.pre}))
""",
    "quantize": r"""
import llama_cpp, gguf
from engine.export.quantize import quantize
base_rss = rss_mb(); t0 = time.perf_counter()
r = quantize(Path(sys.argv[1]) / "model-f16.gguf", Path(sys.argv[1]) / ("model-" + sys.argv[2] + ".gguf"), sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": rss_mb(),
                  "baseline_mb": base_rss, "bytes": r.bytes, "bpw": r.bits_per_weight}))
""",
    "parity": r"""
from engine import config
from engine.export import parity, prompts
cfg = config.load()
cfg["data"]["eval"] = [{root!r} + "/data/eval"]
cfg["data"]["tools"] = {root!r} + "/data/tools.json"
d = Path(sys.argv[1])
texts, _ = prompts.parity_prompts(d / "merged", cfg, int(sys.argv[3]))
base_rss = rss_mb(); t0 = time.perf_counter()
rep = parity.next_token_parity(d / "merged", {{"f16": d / "model-f16.gguf",
                               sys.argv[2]: d / ("model-" + sys.argv[2] + ".gguf")}}, texts)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": rss_mb(),
                  "baseline_mb": base_rss, "report": rep.to_dict()}))
""",
}


def run_step(name: str, work: Path, quant: str) -> dict:
    code = PRELUDE.format(root=str(ROOT)) + STEPS[name].replace("{root!r}", repr(str(ROOT))) \
        .replace("{{", "{").replace("}}", "}")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(work), quant, str(PROMPTS)],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        sys.exit(f"step {name} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quant", default="q4_k_m", choices=["q4_k_m", "q5_k_m", "q8_0"])
    ap.add_argument("--work", help="keep the files here (default: a temporary folder)")
    ap.add_argument("--prompts", type=int, default=8, help="eval prompts in the parity check")
    args = ap.parse_args()
    global PROMPTS
    PROMPTS = args.prompts
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"bench_export — default model, {args.quant}, files in {work}")
    r = {}
    for name in STEPS:
        r[name] = run_step(name, work, args.quant)
        print(f"  {name}: {r[name]['seconds']:.1f} s of work, {r[name]['process_s']:.1f} s in "
              f"all, peak {r[name]['peak_mb']:.0f} MB", flush=True)
    merged_mb = sum(f.stat().st_size for f in (work / "merged").glob("*.safetensors")) / 1e6
    print(f"\n{'step':<10}{'work s':>8}{'process s':>11}{'peak MB':>9}{'above baseline MB':>19}")
    for name in ("merge", "convert", "quantize", "parity"):
        s = r[name]
        print(f"{name:<10}{s['seconds']:>8.1f}{s['process_s']:>11.1f}{s['peak_mb']:>9.0f}"
              f"{s['peak_mb'] - s['baseline_mb']:>19.0f}")
    total = sum(r[n]["seconds"] for n in ("merge", "convert", "quantize"))
    total_p = sum(r[n]["process_s"] for n in ("merge", "convert", "quantize"))
    print(f"\nmerge + convert + quantize: {total:.1f} s of work, {total_p:.1f} s with process "
          f"start-up and imports (target: within 60 s)")
    c = r["convert"]
    print(f"convert streaming: peak {c['peak_mb'] - c['baseline_mb']:.0f} MB above baseline "
          f"for a {merged_mb:.0f} MB merged model / {c['bytes'] / 1e6:.0f} MB f16 GGUF "
          f"(ratio {(c['peak_mb'] - c['baseline_mb']) / merged_mb:.2f}x; process peak "
          f"{c['peak_mb']:.0f} MB = {c['peak_mb'] / merged_mb:.2f}x)")
    q = r["quantize"]
    print(f"sizes: f16 {c['bytes'] / 1e6:.1f} MB ({c['params'] / 1e6:.1f}M params) → "
          f"{args.quant} {q['bytes'] / 1e6:.1f} MB, {q['bpw']:.2f} bits/weight; pre-tokenizer "
          f"{c['pre']!r}")
    rep = r["parity"]["report"]
    for side in rep["sides"]:
        print(f"parity {side['gguf']:>7}: {side['agreement']:.2%} greedy next-token agreement "
              f"over {side['positions']} positions of {rep['prompts']} eval prompts, max "
              f"|Δlogit| {side['max_abs_logit_diff']:.4f} (logits up to {rep['max_abs_logit']:.1f})")
    print(f"tokenizer: {rep['tokenizer_texts_checked']} texts, "
          f"{len(rep['tokenizer_mismatches'])} differing")


if __name__ == "__main__":
    main()
