"""A classification task: train/validation/test splits of batch-first sequence tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    """Inputs x of shape (n, T, d_x) float32 and labels y of shape (n,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return self.y.shape[0]

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.y, minlength=num_classes).tolist()


@dataclass
class Task:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    description: str = ""
    value_range: tuple[float, float] | None = None  # the data's (min, max); None: from train.x

    @property
    def data_range(self) -> tuple[float, float]:
        """(min, max) of the clean data: salt and pepper values and the attacks' clamp."""
        if self.value_range is not None:
            return self.value_range
        return float(self.train.x.min()), float(self.train.x.max())

    @property
    def input_size(self) -> int:
        return self.train.x.shape[-1]

    @property
    def seq_len(self) -> int:
        return self.train.x.shape[1]

    def majority_rate(self, split: str = "test") -> float:
        s = getattr(self, split)
        return max(s.class_counts(self.num_classes)) / len(s)
