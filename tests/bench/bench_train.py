"""Training speed: this trainer against an HF Trainer + peft baseline, side by side.

    python tests/bench/bench_train.py [--steps 4] [--grad-accum 8] [--rounds 2] [--seq-len 1024]
        [--model HF_FOLDER|real] [--baselines fp32,bf16]

Both train LoRA (the config's r/alpha/dropout/targets) on the default model (or ``--model``,
``real``, the real Qwen2.5-Coder-0.5B-Instruct) for the same
number of optimizer steps over the same demo records (the dry run's mix, at its sequence
length, so tool-call records with their tool listing are in) in the same order (batch 1,
gradient accumulation over ``--grad-accum`` records), in fresh processes, alternating ours /
baseline for ``--rounds`` rounds. The baseline is set up the way common fine-tuning tools do by
default on this device: ``Trainer`` with its default attention (SDPA), full-vocabulary logits
for every position, and the stock data collator; only its sampler is made sequential so both
see identical batches. It runs twice: in its default precision (fp32 on a CPU) and with the
setting a knowledgeable user picks where the hardware does bf16 natively (``bf16=True``:
autocast); the speed-up that counts is against the faster of the two.

Prints tokens/s of each (the records' tokens over wall time; median over rounds), the ratio,
the final losses (mean of the last quarter of steps), the tokens each actually ran through the
model, their peak memory (the process's max RSS), and the fraction of the CPU's peak FLOP/s
each reached in the precision it ran. Peak is measured here with a large matmul in fp32 and
in bf16; executed FLOPs are those of a frozen base with LoRA — forward plus the
backward to activations, 4 x parameters per token run through the decoder and 4 x the output
projection per position whose logits are computed (attention scores and the LoRA matrices
themselves are left out, so the fraction is a slight underestimate).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

COMMON = r"""
import json, os, sys, time, torch
if int(os.environ.get("BENCH_THREADS", "0")):
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
from engine import config, models
from engine.records import load_tools
from engine.render import Renderer
from engine.training.data import prepare
steps, seq_len, accum, model_id = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg = config.load(None, [f"dry_run.seq_len={seq_len}", f"dry_run.samples={steps * accum * 3}",
                         "dry_run.learning_rate=2e-4", f"model.id={json.dumps(model_id)}",
                         *json.loads(sys.argv[5])])
folder = models.resolve(model_id)
def peak_gb():
    import resource
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 ** 3 if sys.platform == "darwin" else 1024 ** 2)
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
trainer = backend_for(cfg)(folder, tok, ctx.emit)
res = loop.train(ctx, plan, sd, trainer, tok, [], None,
                 order=lambda m: m)  # the same sequential order as the baseline
from engine.backends.packing import pack_window
run_through = logits = 0
for w in range(0, len(examples), accum):
    for p in pack_window(examples[w:w + accum], cfg["train"]["pack_tokens"],
                         cfg["train"]["share_prefix_tokens"]):
        run_through += len(p)
        logits += p.trained
print(json.dumps({"tokens": res.tokens, "seconds": res.seconds, "losses": res.losses,
                  "precision": res.placement.split("/")[-1], "run_through": run_through,
                  "logits": logits, "peak_gb": peak_gb(), "why": trainer.p.why}))
"""

BASELINE = COMMON + r"""
from peft import LoraConfig, get_peft_model
from torch.utils.data import Dataset, SequentialSampler
from transformers import (AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer,
                          TrainerCallback, TrainingArguments)
lc = cfg["lora"]
precision = sys.argv[6]
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
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
                         bf16=precision == "bf16",
                         dataloader_num_workers=0, disable_tqdm=True)
t0 = time.perf_counter()
Seq(model=model, args=args, train_dataset=DS(),
    data_collator=DataCollatorForSeq2Seq(tok, padding=True), callbacks=[Log()]).train()
seconds = time.perf_counter() - t0
tokens = sum(len(e.input_ids) for e in examples)
print(json.dumps({"tokens": tokens, "seconds": seconds, "losses": losses, "precision": precision,
                  "run_through": tokens, "logits": tokens, "peak_gb": peak_gb()}))
"""

PEAK = r"""
import json, os, time, torch
if int(os.environ.get("BENCH_THREADS", "0")):
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
out = {}
for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
    a = torch.randn(2048, 2048).to(dt); b = torch.randn(2048, 2048).to(dt)
    for _ in range(3): a @ b
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter(); a @ b; a @ b
        best = max(best, 2 * 2 * 2048**3 / (time.perf_counter() - t0))
    out[name] = best
out["fp16"] = out["bf16"]
print(json.dumps(out))
"""

SIZES = r"""
import json, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM
conf = AutoConfig.from_pretrained(sys.argv[1])
with torch.device("meta"):
    m = AutoModelForCausalLM.from_config(conf)
total = sum(p.numel() for p in m.parameters())
head = m.get_output_embeddings().weight.numel()
tied = m.get_output_embeddings().weight is m.get_input_embeddings().weight
# what runs per token: every decoder matrix, plus the output projection where logits are made
body = total - head - (0 if tied else m.get_input_embeddings().weight.numel())
print(json.dumps({"head": head, "body": body, "total": total, "name": conf.model_type}))
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
    ap.add_argument("--model", default="default",
                    help="an HF folder, or 'real': the real Qwen2.5-Coder-0.5B-Instruct as "
                         "published (tied, bf16; `make real-model` fetches it) (default: the "
                         "embedded model)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads on both sides (0: torch's default, every core); 1 "
                         "gives a per-core ratio that a busy shared machine disturbs less")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for this trainer, e.g. train.pack_tokens=512")
    ap.add_argument("--baselines", default="fp32,bf16",
                    help="HF Trainer precisions to run (bf16 only where the CPU does it natively)")
    args = ap.parse_args()
    os.environ["BENCH_THREADS"] = str(args.threads)
    model_id = str(Path(args.model).expanduser()) if args.model != "default" else "default"
    if args.model == "real":
        model_id = child("import json; from tests.support import real_model; "
                         "print(json.dumps({'p': str(real_model.tied_folder())}))")["p"]
    folder = child("import sys; from engine import models; import json; "
                   "print(json.dumps({'p': str(models.resolve(sys.argv[1]))}))", model_id)["p"]
    sizes = child(SIZES, folder)
    head, body = sizes["head"], sizes["body"]
    native = child("import json; from engine import config; "
                   "from engine.backends.precision_probe import choose; "
                   "print(json.dumps(dict(zip(('p', 'why'), choose('cpu', config.load(None, []))))))")
    wanted = [b for b in args.baselines.split(",") if b == "fp32" or native["p"] == "bf16"]
    print(f"CPU: {_cpu_name()}, {os.cpu_count()} cores, torch threads "
          f"{args.threads or 'default'}; load average {_load()}; native choice: {native['p']} "
          f"({native['why']})", flush=True)
    ours: list[dict] = []
    base: dict[str, list[dict]] = {b: [] for b in wanted}
    for r in range(args.rounds):
        a = (str(args.steps), str(args.seq_len), str(args.grad_accum), model_id,
             json.dumps(args.set))
        ours.append(child(OURS, *a))
        line = f"round {r + 1}: ours {ours[-1]['tokens'] / ours[-1]['seconds']:.0f} tok/s"
        for b in wanted:
            base[b].append(child(BASELINE, *a, b))
            line += f", baseline {b} {base[b][-1]['tokens'] / base[b][-1]['seconds']:.0f} tok/s"
        print(line + f" (load {_load()})", flush=True)
    peak = child(PEAK)

    def tps(runs: list[dict]) -> float:
        return statistics.median(r["tokens"] / r["seconds"] for r in runs)

    def final(runs: list[dict]) -> float:
        ls = runs[-1]["losses"]
        tail = ls[-max(1, len(ls) // 4):]
        return sum(tail) / len(tail)

    def of_peak(runs: list[dict]) -> float:
        r = runs[-1]
        flops = 4 * body * r["run_through"] + 4 * head * r["logits"]
        return flops / r["seconds"] / peak[r["precision"]]

    o = tps(ours)
    rates = {b: tps(runs) for b, runs in base.items()}
    fastest = max(rates, key=rates.__getitem__)
    print(f"\n{sizes['name']} ({sizes['total']:,} parameters) from {folder}, {args.steps} steps "
          f"of {args.grad_accum} records, batch 1, seq <= {args.seq_len}, "
          f"{ours[0]['tokens']:,} tokens per run")
    rows = [(f"this trainer ({ours[0]['precision']})", ours, o)] + [
        (f"HF Trainer {b}", base[b], rates[b]) for b in base]
    for name, runs, rate in rows:
        r = runs[-1]
        print(f"{name:24} {rate:6.0f} tokens/s   final loss {final(runs):.4f}   "
              f"ran {r['run_through']:,} tokens, logits at {r['logits']:,}   "
              f"{of_peak(runs):.0%} of the {r['precision']} peak   peak memory "
              f"{r['peak_gb']:.2f} GB")
    print(f"our precision: {ours[0]['why']}" + (f"; settings {' '.join(args.set)}"
                                                    if args.set else ""))
    for b in base:
        mark = " (the faster baseline: this ratio counts)" if b == fastest else ""
        print(f"speed-up vs HF Trainer {b}: {o / rates[b]:.2f}x{mark}")
    fb = final(base[fastest])
    print(f"target >= 2x vs the faster; final loss difference vs it "
          f"{abs(final(ours) - fb) / fb:.1%} (target <= 5%)")
    print(f"measured CPU peak (2048^2 matmul): fp32 {peak['fp32'] / 1e9:.0f}, bf16 "
          f"{peak['bf16'] / 1e9:.0f} GFLOP/s; load average now {_load()}")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    t = time.time()
    code = main()
    print(f"(benchmark took {time.time() - t:.0f} s)")
    sys.exit(code)
