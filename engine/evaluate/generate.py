"""Batched greedy generation with a KV cache: many answers per forward pass, same tokens.

Why it is fast: a decoding step of a small model on a CPU is bound by reading the weights, so
sixteen prompts cost little more than one. Prompts are sorted by length so a batch holds
similar lengths (little padding), padded on the left so every row's next token sits in the
last column, and a row that reaches an end-of-turn token leaves the batch — its cache rows
are dropped — so long answers don't drag finished ones along. Only the last position's
logits are computed (``logits_to_keep=1``), as ``generate`` does.

Why it gives the same tokens as one-at-a-time ``model.generate``: greedy is argmax of the
same logits; padding is masked and positions are counted from each row's first real token,
exactly as transformers does for left-padded batches. Float sums over a padded batch can
still differ in the last bit; a tie broken differently would show in the equality test and
the benchmark, which compare token for token.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Hashable, Sequence

# progress(done_prompts, total_prompts, eta_s): how generation reports
from engine.context import Progress


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """End-of-turn token ids (:func:`engine.stops.stop_ids`: the one list every generation
    stops at)."""
    from engine.stops import stop_ids

    return stop_ids(tokenizer, model=model)


def encode_prompts(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of rendered prompts (the template already holds every special token)."""
    return [list(tokenizer.encode(p, add_special_tokens=False)) for p in prompts]


def generate_ids(model: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                 stop_ids: Sequence[int], pad_id: int, batch_size: int = 16,
                 progress: Progress | None = None, min_shared: int = 16,
                 groups: Sequence[Hashable] | None = None,
                 should_stop: Callable[[], bool] = lambda: False,
                 on_done: Callable[[int, list[int]], None] | None = None) -> list[list[int]]:
    """Greedy continuations (without the stop token) of every prompt, in the input order.

    ``groups``: a key per prompt (the template frame); inside a batch each group is prefilled
    on its own, its shared prefix (``min_shared`` tokens or more; 0 = never) computed once,
    then the whole batch decodes together (see :func:`plan_batches`).
    """
    import torch

    keys = list(groups) if groups is not None else [None] * len(prompts)
    results: list[list[int]] = [[] for _ in prompts]
    started = time.monotonic()
    done = 0
    for chunk in plan_batches([len(p) for p in prompts], batch_size, keys):
        if should_stop():
            break
        outs = _batch(model, [prompts[i] for i in chunk], [keys[i] for i in chunk],
                      max_new_tokens, set(stop_ids), pad_id, torch, min_shared or 10**9)
        for i, out in zip(chunk, outs):
            results[i] = out
            if on_done is not None:  # the caller keeps each answer as soon as it exists
                on_done(i, out)
        done += len(chunk)
        if progress is not None:
            elapsed = time.monotonic() - started
            progress(done, len(prompts), elapsed / done * (len(prompts) - done))
    return results


def plan_batches(lengths: Sequence[int], batch_size: int,
                 groups: Sequence[Hashable] | None = None) -> list[list[int]]:
    """Batches of prompt indices: each group (same template frame, e.g. the prompts that show
    the tool listing) longest first, the groups one after another, cut every ``batch_size``.
    Neighbours share their frame and have similar lengths, so a batch pads little."""
    keys = list(groups) if groups is not None else [None] * len(lengths)
    by_group: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        by_group.setdefault(key, []).append(i)
    order = [i for members in sorted(by_group.values(), key=len, reverse=True)
             for i in sorted(members, key=lambda i: -lengths[i])]
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def common_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every prompt shares, leaving each at least one own token."""
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for i in range(n):
        tok = first[i]
        if any(p[i] != tok for p in prompts):
            return i
    return max(n, 0)


def _prefill(model: Any, prompts: list[Sequence[int]], pad_id: int, torch: Any,
             min_shared: int, cache_kw: str) -> tuple[Any, Any, Any, Any]:
    """(last logits, cache, attention mask, next positions) for prompts of one frame.

    The prefix they all share — the system prompt and the tool listing, often most of a
    prompt — is computed once and its cache repeated for every row; each row's own tokens
    follow, left-padded (padding sits between the shared prefix and the row's text, masked).
    """
    rows, device = len(prompts), model.device
    shared = common_prefix(prompts) if rows > 1 else 0
    if shared < min_shared:
        shared = 0
    tails = [p[shared:] for p in prompts]
    width = max(len(p) for p in tails)
    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for r, p in enumerate(tails):
        ids[r, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[r, shared + width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    extra = {}
    if shared:
        head = torch.tensor([list(prompts[0][:shared])], dtype=torch.long, device=device)
        pre = model(input_ids=head, use_cache=True, logits_to_keep=1)
        cache = getattr(pre, cache_kw)
        cache.batch_repeat_interleave(rows)
        extra = {cache_kw: cache}
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions[:, shared:],
                use_cache=True, logits_to_keep=1, **extra)
    return out.logits[:, -1, :], getattr(out, cache_kw), mask, positions[:, -1:] + 1


def _merge(parts: list[tuple[Any, Any, Any, Any]], torch: Any) -> tuple[Any, Any, Any, Any]:
    """One batch from several prefilled groups: caches and masks left-padded to one length
    (the padding is masked), rows in the order of ``parts``."""
    if len(parts) == 1:
        return parts[0]
    width = max(mask.shape[1] for _, _, mask, _ in parts)
    caches = [cache for _, cache, _, _ in parts]
    merged = caches[0]
    for i, layer in enumerate(merged.layers):
        for name in ("keys", "values"):
            tensors = [getattr(c.layers[i], name) for c in caches]
            setattr(layer, name, torch.cat([
                torch.nn.functional.pad(x, (0, 0, width - x.shape[2], 0)) for x in tensors]))
    mask = torch.cat([torch.nn.functional.pad(m, (width - m.shape[1], 0))
                      for _, _, m, _ in parts])
    return (torch.cat([lg for lg, _, _, _ in parts]), merged, mask,
            torch.cat([pos for _, _, _, pos in parts]))


def _can_merge(cache: Any) -> bool:
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(hasattr(x, "keys") and hasattr(x, "values") for x in layers)


def _batch(model: Any, prompts: list[Sequence[int]], keys: list[Hashable], max_new: int,
           stop: set[int], pad_id: int, torch: Any, min_shared: int) -> list[list[int]]:
    """Greedy answers for one batch: each frame group prefilled on its own, then one decode
    loop for all rows; a row that stops leaves the batch and its cache rows are dropped."""
    cache_kw = _cache_argument(model)
    order: list[int] = []
    by_key: dict[Hashable, list[int]] = {}
    for r, key in enumerate(keys):
        by_key.setdefault(key, []).append(r)
    outputs: list[list[int]] = [[] for _ in prompts]
    with torch.inference_mode():
        parts = []
        for rows in by_key.values():
            parts.append(_prefill(model, [prompts[r] for r in rows], pad_id, torch,
                                  min_shared, cache_kw))
            order += rows
        if len(parts) > 1 and not _can_merge(parts[0][1]):  # a cache type we can't merge
            return [_batch(model, [p], [None], max_new, stop, pad_id, torch, min_shared)[0]
                    for p in prompts]
        logits, cache, mask, next_pos = _merge(parts, torch)
        active = order  # which prompt each remaining batch row belongs to
        for step in range(max_new):
            tokens = logits.argmax(-1)
            keep = []
            for row, token in enumerate(tokens.tolist()):
                if token in stop:
                    continue
                outputs[active[row]].append(token)
                keep.append(row)
            if not keep or step == max_new - 1:
                break
            if len(keep) < len(active):  # finished rows leave the batch and the cache
                index = torch.tensor(keep, device=model.device)
                cache.batch_select_indices(index)
                mask, next_pos, tokens = mask[index], next_pos[index], tokens[index]
                active = [active[r] for r in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos,
                        use_cache=True, logits_to_keep=1, **{cache_kw: cache})
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
    return outputs


def _cache_argument(model: Any) -> str:
    """transformers 5 calls the KV cache ``cache``; earlier versions ``past_key_values``."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters \
        else "past_key_values"


def generate_text(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int,
                  batch_size: int = 16, progress: Progress | None = None,
                  groups: Sequence[Hashable] | None = None,
                  should_stop: Callable[[], bool] = lambda: False,
                  on_answer: Callable[[int, str], None] | None = None) -> list[str]:
    """Answers to rendered prompts (decoded, special tokens dropped); ``on_answer(i, text)``
    hears each one as its batch finishes."""
    stop = stop_token_ids(tokenizer, model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop[0]
    done = None if on_answer is None else (
        lambda i, out: on_answer(i, tokenizer.decode(out, skip_special_tokens=True)))
    ids = generate_ids(model, encode_prompts(tokenizer, prompts), max_new_tokens=max_new_tokens,
                       stop_ids=stop, pad_id=pad, batch_size=batch_size, progress=progress,
                       groups=groups, should_stop=should_stop, on_done=done)
    return [tokenizer.decode(x, skip_special_tokens=True) for x in ids]


def generate_one_by_one(model: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                        stop_ids: Sequence[int], pad_id: int) -> list[list[int]]:
    """The reference: ``model.generate`` on each prompt alone (tests and the benchmark)."""
    import torch

    results = []
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([list(p)], dtype=torch.long, device=model.device)
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, eos_token_id=list(stop_ids),
                                 pad_token_id=pad_id, temperature=None, top_p=None,
                                 top_k=None)
            new = out[0, ids.shape[1]:].tolist()
            cut = next((i for i, t in enumerate(new) if t in set(stop_ids)), len(new))
            results.append(new[:cut])
    return results
