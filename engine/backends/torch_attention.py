"""Attention for packed sequences that only computes what each record may see.

A packed sequence (see :mod:`engine.backends.packing`) holds several records, some sharing a
prompt prefix. Expressed as one dense N×N mask, attention costs N² for every layer and falls off
SDPA's fast kernels (a dense mask forces the generic path, which keeps every score for
backward) — on a CPU that made packing slower than no packing at all. Here attention runs
per piece instead: each shared prefix causally on its own, and each record's own tokens against
[its prefix, itself] — exactly the scores a record would compute alone, nothing more.

The function is registered with transformers' attention interface, so it works for every model
that routes attention through it (Llama, Qwen2, Mistral, …). It is used only when the call
passes ``packed_layout``; otherwise (generation, a plain record) it is plain SDPA.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["NAME", "Layout", "dense_mask", "packed_attention", "register"]

NAME = "web4tui_packed"

# One group: (prefix start, prefix length, [(record start, record length), ...]), in token
# positions of the packed sequence; a group without a shared prefix has prefix length 0.
Layout = list[tuple[int, int, list[tuple[int, int]]]]


def packed_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0,
                     scaling: float | None = None, packed_layout: Layout | None = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if packed_layout is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, **kwargs)
    from torch.nn.attention.bias import causal_lower_right

    gqa = query.shape[1] != key.shape[1]
    p = dropout if module.training else 0.0
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
            pieces.append(F.scaled_dot_product_attention(
                qs[i], kp, vp, dropout_p=p, is_causal=True, scale=scaling, enable_gqa=gqa))
            i += 1
        for _, n in records:
            if not shared:
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


def register() -> str:
    """Make ``NAME`` an attention implementation transformers can load a model with."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, packed_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # masks as for SDPA
    return NAME
