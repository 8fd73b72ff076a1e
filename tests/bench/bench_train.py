"""Training speed: this trainer against an HF Trainer + peft baseline, side by side.

    python tests/bench/bench_train.py [--steps 4] [--grad-accum 8] [--rounds 2] [--seq-len 1024]

Both train LoRA (the config's r/alpha/dropout/targets) on the default model for the same
number of optimizer steps over the same demo records (the dry run's mix, at its sequence
length, so tool-call records with their tool listing are in) in the same order (batch 1,
gradient accumulation over ``--grad-accum`` records), in fresh processes, alternating ours /
baseline for ``--rounds`` rounds. The baseline is set up the way common fine-tuning tools do by
default on this device: ``Trainer`` with its default precision (fp32 on a CPU) and attention
(SDPA), full-vocabulary logits for every position, and the stock data collator; only its
sampler is made sequential so both see identical batches.

Prints tokens/s of each (the records' tokens over wall time; median over rounds), the ratio,
the final losses (mean of the last quarter of steps), the tokens each actually ran through the
model, and the fraction of the CPU's peak FLOP/s each reached. Peak is measured here with a
large fp32 matmul; executed FLOPs are those of a frozen base with LoRA — forward plus the
backward to activations, 4 x parameters per token run through the decoder and 4 x the output
projection per position whose logits are computed (attention scores and the LoRA matrices
themselves are left out, so the fraction is a slight underestimate).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

COMMON = r"""
import json, sys, time, torch
from engine import config, models
from engine.records import load_tools
from engine.render import Renderer
from engine.training.data import prepare
steps, seq_len, accum = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cfg = config.load(None, [f"dry_run.seq_len={seq_len}", f"dry_run.samples={steps * accum * 3}",
                         "dry_run.learning_rate=2e-4"])
folder = models.resolve("default")
tok = models.load_tokenizer(folder)
data = prepare("dry_run", cfg, tok)
examples = data.examples[:steps * accum]
assert len(examples) == steps * accum, "not enough records fit the sequence length"
"""

OURS = COMMON + r"""
from pathlib import Path
import tempfile
from engine.stages.training import backend_for
from engine.training import loop
from engine.training.plan import TrainPlan
from engine.stages.base import StageContext
from engine.training.data import StageData
cfg["train"]["sample_every"] = 10**9
cfg["train"]["checkpoint_every"] = 10**9
cfg["train"]["memory_every"] = 10**9
tmp = Path(tempfile.mkdtemp())
ctx = StageContext(cfg=cfg, emit=lambda *a, **k: None, run_dir=tmp)
plan = TrainPlan("dry_run", grad_accum=accum, epochs=1, max_steps=steps, stop_when=None,
                 checkpoint_root=tmp / "ck", adapter_dir=tmp / "lora")
sd = StageData(examples, {})
res = loop.train(ctx, plan, sd, backend_for(cfg)(folder, tok, ctx.emit), tok, [], None,
                 order=lambda m: m)  # the same sequential order as the baseline
from engine.backends.packing import pack_window
run_through = logits = 0
for w in range(0, len(examples), accum):
    for p in pack_window(examples[w:w + accum], cfg["train"]["pack_tokens"],
                         cfg["train"]["share_prefix_tokens"]):
        run_through += len(p)
        logits += p.trained
print(json.dumps({"tokens": res.tokens, "seconds": res.seconds, "losses": res.losses,
                  "precision": res.placement, "run_through": run_through, "logits": logits}))
"""

BASELINE = COMMON + r"""
from peft import LoraConfig, get_peft_model
from torch.utils.data import Dataset, SequentialSampler
from transformers import (AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer,
                          TrainerCallback, TrainingArguments)
lc = cfg["lora"]
model = AutoModelForCausalLM.from_pretrained(folder)
model = get_peft_model(model, LoraConfig(r=lc["r"], lora_alpha=lc["alpha"],
                                         lora_dropout=lc["dropout"],
                                         target_modules=list(lc["target_modules"]),
                                         task_type="CAUSAL_LM"))
class DS(Dataset):
    def __len__(self): return len(examples)
    def __getitem__(self, i):
        e = examples[i]
        return {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids),
                "labels": e.labels}
class Seq(Trainer):
    def _get_train_sampler(self, *a, **k): return SequentialSampler(self.train_dataset)
losses, times = [], []
class Log(TrainerCallback):
    def on_step_begin(self, args, state, control, **kw): times.append(time.perf_counter())
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs: losses.append(logs["loss"])
args = TrainingArguments(output_dir="/tmp/bench-trainer", per_device_train_batch_size=1,
                         gradient_accumulation_steps=accum, max_steps=steps,
                         learning_rate=2e-4,
                         warmup_steps=max(1, int(steps * cfg["train"]["warmup_ratio"])),
                         lr_scheduler_type="cosine", logging_steps=1, save_strategy="no",
                         report_to=[], use_cpu=True, seed=cfg["run"]["seed"],
                         dataloader_num_workers=0, disable_tqdm=True)
t0 = time.perf_counter()
Seq(model=model, args=args, train_dataset=DS(),
    data_collator=DataCollatorForSeq2Seq(tok, padding=True), callbacks=[Log()]).train()
seconds = time.perf_counter() - t0
tokens = sum(len(e.input_ids) for e in examples)
print(json.dumps({"tokens": tokens, "seconds": seconds, "losses": losses, "precision": "fp32",
                  "run_through": tokens, "logits": tokens}))
"""

PEAK = r"""
import json, time, torch
a = torch.randn(2048, 2048); b = torch.randn(2048, 2048)
for _ in range(3): a @ b
n, t0 = 10, time.perf_counter()
for _ in range(n): a @ b
dt = time.perf_counter() - t0
print(json.dumps({"flops": 2 * 2048**3 * n / dt}))
"""


def child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=1024, help="the dry run's")
    ap.add_argument("--grad-accum", type=int, default=8,
                    help="records per optimizer step (the mini stage's default)")
    args = ap.parse_args()
    # SmolLM2-135M (the default model): 134,515,008 parameters, of which the tied
    # embedding / output projection is 49,152 x 576
    head = 49_152 * 576
    body = 134_515_008 - head
    ours, base = [], []
    for r in range(args.rounds):
        a = (str(args.steps), str(args.seq_len), str(args.grad_accum))
        ours.append(child(OURS, *a))
        base.append(child(BASELINE, *a))
        print(f"round {r + 1}: ours {ours[-1]['tokens'] / ours[-1]['seconds']:.0f} tok/s, "
              f"baseline {base[-1]['tokens'] / base[-1]['seconds']:.0f} tok/s", flush=True)
    peak = child(PEAK)["flops"]

    def tps(runs: list[dict]) -> float:
        return statistics.median(r["tokens"] / r["seconds"] for r in runs)

    def final(runs: list[dict]) -> float:
        ls = runs[-1]["losses"]
        tail = ls[-max(1, len(ls) // 4):]
        return sum(tail) / len(tail)

    def of_peak(runs: list[dict]) -> float:
        r = runs[-1]
        flops = 4 * body * r["run_through"] + 4 * head * r["logits"]
        return flops / r["seconds"] / peak

    o, b = tps(ours), tps(base)
    print(f"\ndefault model, {args.steps} steps of {args.grad_accum} records, batch 1, "
          f"seq <= {args.seq_len}, "
          f"{ours[0]['tokens']:,} tokens per run")
    for name, runs, rate in ((f"this trainer ({ours[0]['precision']})", ours, o),
                             ("HF Trainer baseline (fp32)", base, b)):
        r = runs[-1]
        print(f"{name:28} {rate:6.0f} tokens/s   final loss {final(runs):.4f}   "
              f"ran {r['run_through']:,} tokens, logits at {r['logits']:,}   "
              f"{of_peak(runs):.0%} of peak")
    print(f"speed-up: {o / b:.2f}x (target >= 2x); final loss difference "
          f"{abs(final(ours) - final(base)) / final(base):.1%} (target <= 5%)")
    print(f"measured CPU peak (fp32 matmul): {peak / 1e9:.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    t = time.time()
    code = main()
    print(f"(benchmark took {time.time() - t:.0f} s)")
    sys.exit(code)
