"""Training speed of both backends on the tiny model (on Linux: MLX's CPU backend vs torch CPU).

    python tests/bench/bench_mlx.py [--steps 6] [--grad-accum 2] [--model DIR]

Each backend trains the same records in the same order for the same number of optimizer steps
(all linear targets), in a fresh process; prints tokens/s, the first and last losses and
where it ran. The first step (compilation, warm-up) is left out of tokens/s. A correctness
figure here, not a speed claim: MLX is built for Apple Silicon's GPU, not for x86 CPUs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path
from engine import config, models
from engine.stages.base import StageContext
from engine.training.data import StageData, prepare
backend, folder, steps, accum = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cfg = config.load(None, [f"model.id='{folder}'", f"dry_run.samples={steps * accum}",
                         "dry_run.learning_rate=3e-2", f"train.backend='{backend}'",
                         "lora.target_modules=['q_proj','k_proj','v_proj','o_proj','gate_proj','up_proj','down_proj']"])
for k in ("sample_every", "checkpoint_every", "memory_every"):
    cfg["train"][k] = 10**9
tok = models.load_tokenizer(folder)
data = prepare("dry_run", cfg, tok)
from engine.stages.training import backend_for
from engine.training import loop
from engine.training.plan import TrainPlan
tmp = Path(tempfile.mkdtemp())
per_step = []
def emit(event, **kw):
    if event == "metric":
        per_step.append(kw["values"]["tokens_per_s"])
ctx = StageContext(cfg=cfg, emit=emit, run_dir=tmp)
plan = TrainPlan("dry_run", grad_accum=accum, epochs=1, max_steps=steps, stop_when=None,
                 checkpoint_root=tmp / "ck", adapter_dir=tmp / "lora")
res = loop.train(ctx, plan, StageData(data.examples, {}), backend_for(cfg)(folder, tok, emit),
                 tok, [], None, order=lambda m: m % len(data.examples))
print(json.dumps({"tokens": res.tokens, "seconds": res.seconds, "losses": res.losses,
                  "placement": res.placement, "per_step_tokens_per_s": per_step}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--model", type=Path, default=None)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.support.tiny_model import make_tiny_model
    folder = make_tiny_model(a.model or Path(tempfile.mkdtemp()) / "tiny")
    for backend in ("torch", "mlx"):
        out = subprocess.run([sys.executable, "-c", SCRIPT, backend, str(folder), str(a.steps),
                              str(a.grad_accum)], capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            print(f"{backend}: failed\n{out.stderr[-2000:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        warm = r["per_step_tokens_per_s"][1:] or r["per_step_tokens_per_s"]
        overall = r["tokens"] / r["seconds"] if r["seconds"] else 0.0
        print(f"{backend:5} {r['placement']:16} {overall:8.1f} tokens/s overall, "
              f"{sorted(warm)[len(warm) // 2]:8.1f} median after step 1; loss "
              f"{r['losses'][0]:.3f} -> {r['losses'][-1]:.3f} in {len(r['losses'])} steps")


if __name__ == "__main__":
    main()
