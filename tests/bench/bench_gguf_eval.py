"""GGUF evaluation of tool prompts: llama.cpp's prefix kept between prompts, against a fresh
context for every prompt (what evaluation did before), same prompts, same settings.

    python tests/bench/bench_gguf_eval.py [--gguf FILE] [--prompts 6] [--max-new-tokens 64]
                                          [--catalogue] [--align 4]

``--gguf`` defaults to the real Qwen2.5-Coder-0.5B-Instruct Q4_K_M that ``make real-model``
assembles. The prompts are the tool records of data/eval (every k-th), rendered as stage 5
renders them. Prints both wall times, the ratio (target >= 6x) and whether every answer is
the same text. The demo records list their own few tools, so neighbouring prompts share
little beyond the system prompt; ``--catalogue`` gives every prompt the whole catalogue
(data/tools.json) instead, the ~2,000-token shared frame of data whose records carry no list.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default="", help="a GGUF file (default: the real Qwen 0.5B)")
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--catalogue", action="store_true",
                    help="every prompt lists the whole tool catalogue (one shared frame)")
    ap.add_argument("--align", type=int, default=0,
                    help="eval.gguf_prefix_align (default: the configured value; 0 = from the "
                         "llama.cpp build)")
    args = ap.parse_args()

    from engine import config
    from engine.evaluate import load_records
    from engine.evaluate.gguf_source import GGUFSource, row_block
    from tests.support import real_model

    gguf = Path(args.gguf) if args.gguf else real_model.path()
    if not gguf.is_file():
        print(f"{gguf}: not found (make real-model assembles it)", file=sys.stderr)
        return 2
    cfg = config.defaults()
    cfg["eval"]["max_new_tokens"] = args.max_new_tokens
    cfg["eval"]["gguf_prefix_align"] = args.align or cfg["eval"]["gguf_prefix_align"]
    records, _ = load_records([ROOT / "data" / "eval"])
    tools = [r for r in records if r.bucket == "tool"]
    picked = tools[:: max(1, len(tools) // args.prompts)][: args.prompts]
    if args.catalogue:
        picked = [dataclasses.replace(r, extra={k: v for k, v in r.extra.items()
                                                if k != "tools"}) for r in picked]
    source = GGUFSource(gguf, cfg)
    lengths = [len(source.llm.tokenize(p.encode(), add_bos=False, special=True))
               for p in (source.renderer.render(r).prompt for r in picked)]
    cut = cfg["eval"]["gguf_prefix_align"] or row_block(source.llm)
    print(f"{gguf.name}: {len(picked)} tool prompts ({min(lengths)}-{max(lengths)} tokens), "
          f"max {args.max_new_tokens} new tokens, prefix cut to a multiple of {cut}; "
          f"CPU {os.cpu_count()} cores, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    t0 = time.perf_counter()
    kept = source(picked)
    t_kept = time.perf_counter() - t0
    print(f"prefix kept between prompts:   {t_kept:6.1f} s", flush=True)

    generate = source.llm.generate

    def fresh(*a, **kw):  # a new context for each prompt: the whole prompt is read again
        source.llm.reset()
        return generate(*a, **kw)

    source.llm.generate = fresh
    t0 = time.perf_counter()
    anew = source(picked)
    t_fresh = time.perf_counter() - t0
    print(f"a fresh context every prompt:  {t_fresh:6.1f} s", flush=True)
    differ = [i for i, (a, b) in enumerate(zip(kept, anew)) if a != b]
    print(f"speed-up: {t_fresh / t_kept:.2f}x (target >= 6x); answers identical: "
          f"{len(picked) - len(differ)}/{len(picked)}; "
          f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for i in differ:  # where the two part: llama.cpp's sums run in other batch splits
        a, b = kept[i], anew[i]
        at = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"  prompt {i}: same first {at} characters, then {a[at:at + 40]!r} "
              f"(kept) vs {b[at:at + 40]!r} (fresh)")
    return 0 if not differ else 1


if __name__ == "__main__":
    raise SystemExit(main())
