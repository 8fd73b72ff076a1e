"""Attention for packed sequences that only computes what each record may see.

A packed sequence (see :mod:`engine.backends.packing`) holds several records, some sharing a
prompt prefix. Expressed as one dense N×N mask, attention costs N² for every layer and falls off
SDPA's fast kernels (a dense mask forces the generic path, which keeps every score for
backward) — on a CPU that made packing slower than no packing at all. Here attention runs
per piece instead: each shared prefix causally on its own, and each record's own tokens against
[its prefix, itself] — exactly the scores a record would compute alone, nothing more.

On a CPU, SDPA's fused kernel is slow for the pieces of a packed step (measured in bf16 on
2 threads, forward and backward: 1.8x slower than plain matrix products at 150 tokens, 1.4x
at 300, 2x at 556 tokens after a 24-token prefix, where a mask costs the kernel its causal
skip), so there every piece runs :class:`_SmallAttention` instead: the scores of a block of
queries as one matrix product per key head, against the keys that block may see, softmax in
fp32, and a backward that recomputes them from the saved log-sum-exp (so, like the fused
kernel, it keeps no scores between forward and backward). A block holds at most
``math_max`` scores per head, which keeps them in cache, and a short piece is one block.
A piece with at most ``keep_max`` scores per head keeps its probabilities (in the base's
format, as the product with the values already needs them) instead: its backward then skips
the recomputation, a third of attention's work, for memory that stays small for short pieces.
Other devices and attention dropout keep SDPA.

The function is registered with transformers' attention interface, so it works for every model
that routes attention through it (Llama, Qwen2, Mistral, …). It is used when the call
passes ``packed_layout``, and for a lone record in training on a CPU (one causal piece);
otherwise (generation, a padded batch) it is plain SDPA.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["NAME", "Layout", "dense_mask", "packed_attention", "register"]

NAME = "web4tui_packed"

#: Most scores per head (query tokens x key tokens) in one block of _SmallAttention on a CPU
#: (0: SDPA); set from train.attention_math_max by :func:`register`.
math_max = 0
#: Most scores per head of a piece whose probabilities are kept for backward (0: recompute);
#: set from train.attention_keep_max by :func:`register`.
keep_max = 0

# One group: (prefix start, prefix length, [(record start, record length), ...]), in token
# positions of the packed sequence; a group without a shared prefix has prefix length 0.
Layout = list[tuple[int, int, list[tuple[int, int]]]]


def packed_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0,
                     scaling: float | None = None, packed_layout: Layout | None = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    n = query.shape[2]
    if packed_layout is None and (
            attention_mask is not None or not module.training or dropout
            or query.device.type != "cpu" or key.shape[2] != n or not math_max):
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, **kwargs)
    if packed_layout is None:  # one whole record in training: one causal piece
        packed_layout = [(0, 0, [(0, n)])]
    from torch.nn.attention.bias import causal_lower_right

    gqa = query.shape[1] != key.shape[1]
    p = dropout if module.training else 0.0
    small = math_max if (query.device.type == "cpu" and p == 0.0) else 0
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    # Split once into the layout's contiguous pieces (prefix, record, record, …): the
    # backward of a split is one concatenation, where slicing piece by piece would build a
    # zero-filled full-size gradient for every piece of every layer.
    sizes = [n for _, shared, records in packed_layout
             for n in ([shared] if shared else []) + [m for _, m in records]]
    qs, ks, vs = (t.split(sizes, dim=2) for t in (query, key, value))
    pieces: list[torch.Tensor] = []
    i = 0
    for _, shared, records in packed_layout:
        if shared:
            kp, vp = ks[i], vs[i]
            if small:
                pieces.append(_SmallAttention.apply(qs[i], kp, vp, scaling, small, keep_max))
            else:
                pieces.append(F.scaled_dot_product_attention(
                    qs[i], kp, vp, dropout_p=p, is_causal=True, scale=scaling, enable_gqa=gqa))
            i += 1
        for _, n in records:
            if small:  # the record sees [its prefix, itself causally]
                pieces.append(_SmallAttention.apply(
                    qs[i], torch.cat([kp, ks[i]], dim=2) if shared else ks[i],
                    torch.cat([vp, vs[i]], dim=2) if shared else vs[i], scaling, small,
                    keep_max))
            elif not shared:
                pieces.append(F.scaled_dot_product_attention(
                    qs[i], ks[i], vs[i], dropout_p=p, is_causal=True, scale=scaling,
                    enable_gqa=gqa))
            else:  # the record sees its whole prefix, then itself causally
                pieces.append(F.scaled_dot_product_attention(
                    qs[i], torch.cat([kp, ks[i]], dim=2), torch.cat([vp, vs[i]], dim=2),
                    attn_mask=causal_lower_right(n, shared + n), dropout_p=p, scale=scaling,
                    enable_gqa=gqa))
            i += 1
    out = torch.cat(pieces, dim=2)
    return out.transpose(1, 2).contiguous(), None


@functools.lru_cache(maxsize=64)
def _hidden(n: int, device: Any) -> torch.Tensor:
    """Of a block's last n keys, the ones each of its n queries may not see: (n, n - 1)."""
    return torch.ones(n, n - 1, dtype=torch.bool, device=device).triu_()


class _SmallAttention(torch.autograd.Function):
    """Causal attention of n queries on the last n of m keys (the first m - n, a shared
    prefix, seen by all), grouped-query heads without copying keys: the query heads of one
    key head are stacked into one matrix product. Queries go in blocks of at most ``most``
    scores per head; a block's queries see the keys up to their own, never the ones after
    the block, so the masked half of a long piece is mostly never computed."""

    @staticmethod
    def _probs(qg: torch.Tensor, k: torch.Tensor, lse: torch.Tensor | None, scale: float,
               shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax of the block's scores (in place of them), and their log-sum-exp: given
        ``lse``, one pass of exp; without, still one (the row maximum, exp, then the sum)."""
        n, m = shape[-2], shape[-1]
        s = torch.matmul(qg, k.transpose(-1, -2)).float().view(shape).mul_(scale)
        if n > 1:  # only the block's last n keys are partly hidden: its causal triangle
            s[..., m - n + 1:].masked_fill_(_hidden(n, s.device), float("-inf"))
        if lse is not None:
            return s.sub_(lse).exp_(), lse
        top = s.amax(dim=-1, keepdim=True)
        sums = s.sub_(top).exp_().sum(dim=-1, keepdim=True)
        return s.div_(sums), top.add_(sums.log_())

    @staticmethod
    def _blocks(n: int, m: int, most: int) -> list[tuple[int, int, int]]:
        """(first query, end query, keys seen) of each block."""
        size = max(16, most // max(1, m) // 16 * 16) if most else n
        return [(a, min(n, a + size), m - n + min(n, a + size)) for a in range(0, n, size)]

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                most: int, keep: int = 0) -> torch.Tensor:
        b, h, n, d = q.shape
        g, m = k.shape[1], k.shape[2]
        blocks = _SmallAttention._blocks(n, m, most)
        ctx.kept = sum((e - a) * seen for a, e, seen in blocks) <= keep
        outs, saved = [], []
        for a, e, seen in blocks:
            shape = (b, g, h // g, e - a, seen)
            qg = q[:, :, a:e].reshape(b, g, h // g * (e - a), d)
            probs, lse = _SmallAttention._probs(qg, k[:, :, :seen], None, scale, shape)
            probs = probs.to(q.dtype)
            outs.append(torch.matmul(probs.view(b, g, -1, seen), v[:, :, :seen])
                        .view(b, h, e - a, d))
            saved.append(probs if ctx.kept else lse)
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
        ctx.save_for_backward(q, k, v, out, *saved)
        ctx.scale, ctx.most = scale, most
        return out

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[Any, ...]:
        q, k, v, out, *saved = ctx.saved_tensors
        b, h, n, d = q.shape
        g, m = k.shape[1], k.shape[2]
        r = h // g
        blocks = _SmallAttention._blocks(n, m, ctx.most)
        # several blocks add into the keys they share: sum those in fp32
        acc = torch.float32 if len(blocks) > 1 else k.dtype
        dq = torch.empty_like(q)
        dk = torch.zeros(k.shape, dtype=acc, device=k.device)
        dv = torch.zeros(v.shape, dtype=acc, device=v.device)
        for (a, e, seen), kept in zip(blocks, saved):
            c, shape = e - a, (b, g, r, e - a, seen)
            qg = q[:, :, a:e].reshape(b, g, r * c, d)
            probs = kept.view(shape) if ctx.kept else _SmallAttention._probs(
                qg, k[:, :, :seen], kept, ctx.scale, shape)[0]
            dg = dout[:, :, a:e].reshape(b, g, r * c, d).to(q.dtype)
            dv[:, :, :seen] += torch.matmul(
                probs.to(q.dtype).view(b, g, r * c, seen).transpose(-1, -2), dg)
            dp = torch.matmul(dg, v[:, :, :seen].transpose(-1, -2)).float().view(shape)
            delta = (dout[:, :, a:e].float() * out[:, :, a:e].float()).sum(-1).view(
                b, g, r, c, 1)
            ds = dp.sub_(delta).mul_(probs).mul_(ctx.scale).to(q.dtype).view(b, g, r * c, seen)
            dq[:, :, a:e] = torch.matmul(ds, k[:, :, :seen]).view(b, h, c, d)
            dk[:, :, :seen] += torch.matmul(ds.transpose(-1, -2), qg)
        return dq, dk.to(k.dtype), dv.to(v.dtype), None, None, None


def dense_mask(layout: Layout, n: int, device: Any = None) -> torch.Tensor:
    """The same visibility as one (1, 1, n, n) boolean mask — for a model whose attention does
    not go through transformers' interface (exact, but N² per layer and SDPA's slow path)."""
    mask = torch.zeros(n, n, dtype=torch.bool, device=device)
    for start, shared, records in layout:
        if shared:
            mask[start:start + shared, start:start + shared] = True
        for r0, m in records:
            mask[r0:r0 + m, start:start + shared] = True
            mask[r0:r0 + m, r0:r0 + m] = True
    return mask.tril()[None, None]


def register(small_max: int = 0, kept_max: int = 0) -> str:
    """Make ``NAME`` an attention implementation transformers can load a model with;
    ``small_max`` sets :data:`math_max` and ``kept_max`` :data:`keep_max`."""
    global math_max, keep_max
    math_max, keep_max = small_max, kept_max
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, packed_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # masks as for SDPA
    return NAME
