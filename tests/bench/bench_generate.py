"""Batched greedy generation against one-prompt-at-a-time HF ``generate``, same prompts.

    python tests/bench/bench_generate.py [--model default|tiny] [--prompts 32]
                                         [--max-new-tokens 64] [--batch-size 16] [--threads N]

The prompts are eval records (every k-th of data/eval, so every bucket is in), rendered the
one way evaluation renders them. Prints each path's throughput (generated tokens per second,
end to end: prefill included), the ratio (target >= 3x) and whether the answers are
token-for-token identical. ``--model default`` is SmolLM2-135M-Instruct (the embedded model);
``tiny`` is a random 2-layer model with its tokenizer, for a quick look. ``--threads`` sets
torch's CPU threads for both paths (on a machine shared with other work, 1 thread gives far
steadier timings than spinning OpenMP threads fighting for the same cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default", help="default, tiny, or a HF folder")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = ap.parse_args()

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    from engine import config, models
    from engine.evaluate import load_records
    from engine.evaluate.generate import (
        encode_prompts, generate_ids, generate_one_by_one, stop_token_ids,
    )
    from engine.records import load_tools
    from engine.render import Renderer

    folder = models.resolve("default" if args.model == "tiny" else args.model)
    tok = models.load_tokenizer(folder)
    if args.model == "tiny":
        from transformers import LlamaConfig, LlamaForCausalLM
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
            pad_token_id=2, eos_token_id=2, bos_token_id=1)).eval()
        name = "tiny random 2-layer model"
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        name = models.describe({"model": {"id": args.model}})
    cfg = config.defaults()
    renderer = Renderer(tok, cfg["data"]["system_prompt"], load_tools(ROOT / "data/tools.json"))
    records, _ = load_records([ROOT / "data" / "eval"])
    step = max(1, len(records) // args.prompts)
    picked = records[::step][: args.prompts]
    prompts = encode_prompts(tok, [renderer.render(r).prompt for r in picked])
    stop = stop_token_ids(tok, model)
    pad = tok.pad_token_id if tok.pad_token_id is not None else stop[0]
    print(f"model: {name}; {len(prompts)} eval prompts ({min(map(len, prompts))}-"
          f"{max(map(len, prompts))} tokens), max {args.max_new_tokens} new tokens, "
          f"torch threads {torch.get_num_threads()}", flush=True)

    t0 = time.perf_counter()
    single = generate_one_by_one(model, prompts, max_new_tokens=args.max_new_tokens,
                                 stop_ids=stop, pad_id=pad)
    t_single = time.perf_counter() - t0
    n_single = sum(map(len, single))
    print(f"one at a time (HF generate): {n_single} tokens in {t_single:.1f}s = "
          f"{n_single / t_single:.1f} tokens/s", flush=True)

    t0 = time.perf_counter()
    batched = generate_ids(model, prompts, max_new_tokens=args.max_new_tokens, stop_ids=stop,
                           pad_id=pad, batch_size=args.batch_size,
                           groups=[renderer.frame(r) for r in picked])
    t_batch = time.perf_counter() - t0
    n_batch = sum(map(len, batched))
    print(f"batched (batch {args.batch_size}): {n_batch} tokens in {t_batch:.1f}s = "
          f"{n_batch / t_batch:.1f} tokens/s", flush=True)

    same = sum(1 for a, b in zip(single, batched) if a == b)
    ratio = (n_batch / t_batch) / (n_single / t_single)
    print(f"ratio: {ratio:.2f}x (target >= 3x: {'met' if ratio >= 3 else 'NOT met'})")
    print(f"identical greedy outputs: {same}/{len(prompts)}"
          + ("" if same == len(prompts) else " — DIFFERENT"))
    return 0 if same == len(prompts) else 1


if __name__ == "__main__":
    sys.exit(main())
