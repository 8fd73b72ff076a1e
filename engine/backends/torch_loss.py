"""The loss over the trained positions, through the output projection, a slice at a time.

With a vocabulary of 50k-150k tokens the logits of even a few hundred positions are hundreds of
MB in fp32: computed whole (projection, upcast, log-softmax, its backward, the one-hot
gradient), each pass streams them through memory several times, which on a CPU cost as much
as the projection itself. Here the loss and the gradient with respect to the hidden states
are computed together, ``chunk`` positions at a time, so the logits of one slice stay in cache
and are never kept for backward; backward only scales the stored gradient. The matrix
products are the ones autograd would run (the projection forward, and the gradient times the
weight), so it costs no extra work. It needs a frozen output projection without bias (LoRA
does not train it); otherwise :func:`head_loss` takes the plain path.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["head_loss"]


class _ChunkedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor,
                chunk: int) -> torch.Tensor:
        hidden = hidden.to(weight.dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad = torch.empty_like(hidden)
        for h, t, g in zip(hidden.split(chunk), target.split(chunk), grad.split(chunk)):
            logits = torch.mm(h, weight.t()).float()
            picked = logits.gather(1, t[:, None])[:, 0]
            top = logits.amax(dim=-1, keepdim=True)
            probs = logits.sub_(top).exp_()  # one pass of exp, in place of the logits
            sums = probs.sum(dim=-1, keepdim=True)
            total += (top + sums.log()).sum() - picked.sum()  # log-sum-exp - target logit
            probs.div_(sums)  # softmax
            probs[torch.arange(len(t), device=t.device), t] -= 1.0  # d loss / d logits
            torch.mm(probs.to(weight.dtype), weight, out=g)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_out.to(grad.dtype), None, None, None


def head_loss(head: Any, hidden: torch.Tensor, target: torch.Tensor, chunk: int
              ) -> torch.Tensor:
    """Summed cross-entropy of ``head(hidden)`` against ``target`` (fp32 softmax)."""
    weight = getattr(head, "weight", None)
    fused = (chunk > 0 and type(head) is torch.nn.Linear and head.bias is None
             and weight is not None and not weight.requires_grad)
    if not fused:
        return F.cross_entropy(head(hidden).float(), target, reduction="sum")
    return _ChunkedHeadLoss.apply(hidden, weight, target, chunk)
