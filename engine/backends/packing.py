"""How the records of one optimizer step become the sequences the model runs on.

Two savings, both exact (the loss and gradients equal running every record on its own):

* **Padding-free packing** — consecutive records go into one sequence of up to ``budget``
  tokens; positions restart at each record and the attention mask keeps records apart, so the
  matrix products are larger (faster) and no token is padding.
* **Shared prefixes** — records that open with the same tokens (the system prompt and tool
  listing most fine-tuning sets repeat on every record) run those tokens once. Every record
  attends to the one copy of the prefix and to its own tokens only, the way a prefix tree of
  sequences would, so a step over eight tool-call records computes the ~500-token listing once
  instead of eight times. A prefix only ever covers prompt tokens, so no trained token is lost
  or counted twice; within a step all records see the same weights, so sharing is exact.

Torch-free: the backend turns a :class:`Packed` into tensors and a mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.examples import IGNORE, Example

__all__ = ["Packed", "pack_window"]


@dataclass
class Packed:
    """One sequence: tokens, what each position predicts, and (``layout``) who may attend to
    whom."""

    ids: list[int] = field(default_factory=list)
    target: list[int] = field(default_factory=list)  # the next token to predict, or IGNORE
    positions: list[int] = field(default_factory=list)
    records: int = 0
    shared_tokens: int = 0  # prompt tokens not recomputed thanks to sharing
    # per group: (prefix start, prefix length, [(record start, record length), ...])
    layout: list[tuple[int, int, list[tuple[int, int]]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def plain(self) -> bool:
        """One record, no sharing: plain causal attention, no mask needed."""
        return self.records == 1 and self.shared_tokens == 0

    @property
    def trained(self) -> int:
        return sum(1 for t in self.target if t != IGNORE)

    def add(self, ex: Sequence[Example], prefix: int) -> None:
        """Append records that share their first ``prefix`` tokens (0: no sharing)."""
        self.layout.append((len(self.ids), prefix, []))
        if prefix:
            first = ex[0]
            self.ids += first.input_ids[:prefix]
            self.target += [IGNORE] * prefix  # the prefix ends before any trained token
            self.positions += range(prefix)
            self.shared_tokens += prefix * (len(ex) - 1)
        for e in ex:
            n = len(e.input_ids) - prefix
            self.layout[-1][2].append((len(self.ids), n))
            self.ids += e.input_ids[prefix:]
            # position t predicts token t+1 of the same record; a record's last token
            # predicts nothing (the next token in the sequence belongs to another record)
            self.target += [*e.labels[prefix + 1:], IGNORE]
            self.positions += range(prefix, prefix + n)
        self.records += len(ex)


def first_trained(e: Example) -> int:
    return next((i for i, lab in enumerate(e.labels) if lab != IGNORE), len(e.labels))


def _common(a: list[int], b: list[int], cap: int) -> int:
    n = min(len(a), len(b), cap)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def pack_window(window: Sequence[Example], budget: int, min_shared: int) -> list[Packed]:
    """The sequences for one optimizer step's records.

    ``budget`` caps a sequence's tokens (0 = one record per sequence, nothing shared);
    records whose common opening is at least ``min_shared`` tokens share it (0 = never).
    """
    if not budget:
        out = []
        for e in window:
            p = Packed()
            p.add([e], 0)
            out.append(p)
        return out
    groups = _share(list(window), min_shared) if min_shared else [(0, [e]) for e in window]
    # fill sequences up to the budget, splitting a group that does not fit
    out: list[Packed] = []
    for shared, members in groups:
        if len(members) == 1:
            shared = 0
        chunk: list[Example] = []
        size = shared
        for e in members:
            n = len(e.input_ids) - shared
            if chunk and size + n > budget:
                _place(out, chunk, shared if len(chunk) > 1 else 0, budget)
                chunk, size = [], shared
            chunk.append(e)
            size += n
        _place(out, chunk, shared if len(chunk) > 1 else 0, budget)
    return out


def _share(window: list[Example], min_shared: int) -> list[tuple[int, list[Example]]]:
    """Split the window into groups sharing a prefix so that the fewest tokens are computed.

    Sorted by their tokens, records with long common openings sit side by side and the best
    grouping is a split of that list into runs (the common prefix of a run is the smallest of
    its neighbours'), which a small dynamic programme finds exactly: windows hold tens of
    records at most. Sorting changes only the order of a sum, so the step is the same.
    """
    ws = sorted(window, key=lambda e: e.input_ids)
    caps = [max(0, first_trained(e) - 1) for e in ws]
    # common[i]: tokens ws[i-1] and ws[i] can share (prompt only, as far as both allow)
    common = [0] + [_common(ws[i - 1].input_ids, ws[i].input_ids, min(caps[i - 1], caps[i]))
                    for i in range(1, len(ws))]
    best = [0] * (len(ws) + 1)  # best[j]: most tokens saved over ws[:j]
    cut = [0] * (len(ws) + 1)
    for j in range(1, len(ws) + 1):
        best[j], cut[j] = best[j - 1], j - 1  # ws[j-1] alone
        shared = 10**9
        for i in range(j - 2, -1, -1):  # the run ws[i:j]
            shared = min(shared, common[i + 1])
            if shared < min_shared:
                break
            if best[i] + (j - 1 - i) * shared > best[j]:
                best[j], cut[j] = best[i] + (j - 1 - i) * shared, i
    groups: list[tuple[int, list[Example]]] = []
    j = len(ws)
    while j:
        i = cut[j]
        run = ws[i:j]
        shared = min(common[i + 1:j], default=0) if len(run) > 1 else 0
        groups.append((shared, run))
        j = i
    return groups[::-1]


def _place(out: list[Packed], ex: list[Example], prefix: int, budget: int) -> None:
    size = prefix + sum(len(e.input_ids) - prefix for e in ex)
    if not out or len(out[-1]) + size > budget:
        out.append(Packed())
    out[-1].add(ex, prefix)
