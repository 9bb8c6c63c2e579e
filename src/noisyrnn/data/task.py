"""A task: train/validation/(test) splits of batch-first sequence tensors, with class labels
(classification) or real-valued targets (regression)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    """Inputs x of shape (n, T, d_x) float32, labels y of shape (n,) int64 (classification) or
    targets (n, k) float32 (regression) and, for padded sequences of unequal length, ``lengths``
    (n,) int64 (None: every sequence has T steps)."""

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.y.shape[0]

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.y, minlength=num_classes).tolist()

    def subset(self, idx) -> "Split":
        return Split(self.x[idx], self.y[idx], None if self.lengths is None else self.lengths[idx])

    def batch(self, idx, device="cpu"):
        """(x, y, lengths) of the rows ``idx`` on ``device``; x is cut to the longest of them
        (exact: padded steps change nothing), lengths None when they are all full."""
        x, y = self.x[idx], self.y[idx]
        lengths = None
        if self.lengths is not None:
            lengths = self.lengths[idx]
            longest = int(lengths.max()) if len(lengths) else x.shape[1]
            x = x[:, :longest]
            if len(lengths) and int(lengths.min()) == longest:
                lengths = None
            else:
                lengths = lengths.to(device)
        return x.to(device), y.to(device), lengths

    def step_mask(self) -> torch.Tensor:
        """(n, T, 1) mask: 1 on real steps, 0 on padding."""
        if self.lengths is None:
            return torch.ones(self.x.shape[0], self.x.shape[1], 1, dtype=self.x.dtype)
        steps = torch.arange(self.x.shape[1]).unsqueeze(0)
        return (steps < self.lengths.unsqueeze(1)).unsqueeze(-1).to(self.x.dtype)


@dataclass
class Task:
    """Splits and what the data are. ``classes``: the user's label for each class index
    (None: the class indices themselves); ``normalization``: the per-channel statistics the
    inputs were scaled with (a :class:`~noisyrnn.data.normalize.ChannelNormalizer` stored with
    checkpoints and applied again at predict time), None for the paper's tasks.

    A regression task (``regression``) has targets (n, k) instead of labels: ``num_classes`` is
    then the model's output width k, and ``target_normalization`` the targets' z-scoring
    (training split statistics; predictions are mapped back to the data's units).
    ``held_out_validation`` False: ``val`` is the training split itself (user data with
    ``val_fraction = 0``), so training must keep the last epoch."""

    name: str
    train: Split
    val: Split
    test: Split | None
    num_classes: int
    description: str = ""
    value_range: tuple[float, float] | None = None  # the data's (min, max); None: from train.x
    classes: list | None = None
    normalization: object | None = None
    regression: bool = False
    target_normalization: object | None = None
    held_out_validation: bool = True  # False: val is the training split itself (val_fraction = 0)

    @property
    def num_outputs(self) -> int:
        """The decoder's width: classes, or regression targets."""
        return self.num_classes

    @property
    def data_range(self) -> tuple[float, float]:
        """(min, max) of the clean data (real steps only): salt and pepper values and the attacks' clamp."""
        if self.value_range is not None:
            return self.value_range
        x = self.train.x
        if self.train.lengths is not None:
            x = x[self.train.step_mask().expand_as(x).bool()]
        return float(x.min()), float(x.max())

    @property
    def input_size(self) -> int:
        return self.train.x.shape[-1]

    @property
    def seq_len(self) -> int:
        return self.train.x.shape[1]

    @property
    def class_labels(self) -> list:
        return list(self.classes) if self.classes is not None else list(range(self.num_classes))

    def data_spec(self) -> dict:
        """What a checkpoint must remember to read new data as this task's: JSON-ready."""
        if self.regression:
            return {"input_size": self.input_size, "regression": True, "targets": self.num_classes,
                    "target_normalization": None if self.target_normalization is None
                    else self.target_normalization.to_dict(),
                    "normalization": None if self.normalization is None else self.normalization.to_dict(),
                    "value_range": list(self.data_range)}
        return {
            "input_size": self.input_size,
            "classes": [_json_label(c) for c in self.class_labels],
            "normalization": None if self.normalization is None else self.normalization.to_dict(),
            "value_range": list(self.data_range),
        }

    def majority_rate(self, split: str = "test") -> float:
        s = getattr(self, split)
        return max(s.class_counts(self.num_classes)) / len(s)


def _json_label(label):
    """A label as JSON stores it (numpy scalars to Python); other types are refused by name."""
    if hasattr(label, "item") and not isinstance(label, (str, bytes)):
        label = label.item()
    if isinstance(label, (str, int, float, bool)) or label is None:
        return label
    raise TypeError(f"class label {label!r} of type {type(label).__name__} cannot be stored in a checkpoint; "
                    "use strings or numbers")
