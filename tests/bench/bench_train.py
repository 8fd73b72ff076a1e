"""Training speed: this trainer against an HF Trainer + peft baseline, side by side.

    python tests/bench/bench_train.py [--steps 24] [--rounds 2] [--seq-len 512]

Both train LoRA (the config's r/alpha/dropout/targets) on the default model for the same
number of steps over the same demo records in the same order (batch 1, no accumulation), in
fresh processes, alternating ours / baseline for ``--rounds`` rounds. The baseline is set up
the way common fine-tuning tools do by default on this device: ``Trainer`` with its default
precision (fp32 on a CPU), full-vocabulary logits for every position, and the stock data
collator; only its sampler is made sequential so both see identical batches.

Prints tokens/s of each (median over rounds), the ratio, the final losses (mean of the last
quarter of steps), and the fraction of the CPU's peak FLOP/s reached, where peak is measured
here with a large fp32 matmul and model FLOPs are 6 x parameters x tokens.
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
steps, seq_len = int(sys.argv[1]), int(sys.argv[2])
cfg = config.load(None, [f"dry_run.seq_len={seq_len}", f"dry_run.samples={steps}",
                         "dry_run.learning_rate=2e-4"])
folder = models.resolve("default")
tok = models.load_tokenizer(folder)
data = prepare("dry_run", cfg, tok)
examples = data.examples[:steps]
"""

OURS = COMMON + r"""
from pathlib import Path
import tempfile
from engine.backends.torch_lora import TorchTrainer, TrainPlan
from engine.stages.base import StageContext
from engine.training.data import StageData
cfg["train"]["sample_every"] = 10**9
cfg["train"]["checkpoint_every"] = 10**9
cfg["train"]["memory_every"] = 10**9
tmp = Path(tempfile.mkdtemp())
ctx = StageContext(cfg=cfg, emit=lambda *a, **k: None, run_dir=tmp)
plan = TrainPlan("dry_run", grad_accum=1, epochs=1, max_steps=len(examples), stop_when=None,
                 checkpoint_root=tmp / "ck", adapter_dir=tmp / "lora")
sd = StageData(examples, {})
trainer = TorchTrainer(ctx, cfg, plan, sd, folder, tok, [], None)
trainer.example_at = lambda m: m  # the same sequential order as the baseline
res = trainer.run()
print(json.dumps({"tokens": res.tokens, "seconds": res.seconds, "losses": res.losses,
                  "precision": res.placement}))
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
                         gradient_accumulation_steps=1, max_steps=len(examples),
                         learning_rate=2e-4, warmup_ratio=cfg["train"]["warmup_ratio"],
                         lr_scheduler_type="cosine", logging_steps=1, save_strategy="no",
                         report_to=[], use_cpu=True, seed=cfg["run"]["seed"],
                         dataloader_num_workers=0, disable_tqdm=True)
t0 = time.perf_counter()
Seq(model=model, args=args, train_dataset=DS(),
    data_collator=DataCollatorForSeq2Seq(tok, padding=True), callbacks=[Log()]).train()
seconds = time.perf_counter() - t0
tokens = sum(len(e.input_ids) for e in examples)
print(json.dumps({"tokens": tokens, "seconds": seconds, "losses": losses, "precision": "fp32"}))
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
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=512)
    args = ap.parse_args()
    params = 134_515_008  # SmolLM2-135M (the default model)
    ours, base = [], []
    for r in range(args.rounds):
        ours.append(child(OURS, str(args.steps), str(args.seq_len)))
        base.append(child(BASELINE, str(args.steps), str(args.seq_len)))
        print(f"round {r + 1}: ours {ours[-1]['tokens'] / ours[-1]['seconds']:.0f} tok/s, "
              f"baseline {base[-1]['tokens'] / base[-1]['seconds']:.0f} tok/s", flush=True)
    peak = child(PEAK)["flops"]

    def tps(runs: list[dict]) -> float:
        return statistics.median(r["tokens"] / r["seconds"] for r in runs)

    def final(runs: list[dict]) -> float:
        ls = runs[-1]["losses"]
        tail = ls[-max(1, len(ls) // 4):]
        return sum(tail) / len(tail)

    o, b = tps(ours), tps(base)
    print(f"\ndefault model, {args.steps} steps, batch 1, seq <= {args.seq_len}, "
          f"{ours[0]['tokens']:,} tokens per run")
    print(f"this trainer ({ours[0]['precision']}): {o:8.0f} tokens/s   final loss "
          f"{final(ours):.4f}   MFU {6 * params * o / peak:.1%}")
    print(f"HF Trainer baseline (fp32):  {b:8.0f} tokens/s   final loss "
          f"{final(base):.4f}   MFU {6 * params * b / peak:.1%}")
    print(f"speed-up: {o / b:.2f}x (target >= 2x); final loss difference "
          f"{abs(final(ours) - final(base)) / final(base):.1%} (target <= 5%)")
    print(f"measured CPU peak (fp32 matmul): {peak / 1e9:.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    t = time.time()
    code = main()
    print(f"(benchmark took {time.time() - t:.0f} s)")
    sys.exit(code)
