"""A training example: one record as the tokens a backend trains on.

Made by :mod:`engine.training.data`, consumed by the backends; it sits below both so neither
imports the other's layer for it.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100  # label of tokens the loss ignores (the prompt)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens
    bucket: str
    id: str

    @property
    def trained_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)
