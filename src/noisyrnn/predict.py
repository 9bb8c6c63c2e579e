"""A trained run read back for new data: the model, the user's class labels and the input
normalisation stored in its checkpoint, and class probabilities for new sequences."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from .data.files import atomic_write_text
from .data.normalize import ChannelNormalizer
from .data.task import Split
from .training.checkpoint import load_model


@dataclass
class TrainedRun:
    model: torch.nn.Module
    classes: list
    normalization: ChannelNormalizer | None
    value_range: tuple[float, float] | None
    meta: dict
    folder: Path

    @classmethod
    def load(cls, folder) -> "TrainedRun":
        folder = Path(folder)
        model, meta = load_model(folder)
        spec = meta.get("data") or {}
        classes = spec.get("classes") or list(range(model.num_classes))
        vr = spec.get("value_range")
        return cls(model, classes, ChannelNormalizer.from_dict(spec.get("normalization")),
                   None if vr is None else tuple(vr), meta, folder)


@torch.no_grad()
def predict_proba(model, split: Split, batch_size: int = 1000) -> torch.Tensor:
    """Softmax class probabilities (n, C), noise injection off."""
    was = model.training
    model.eval()
    out = []
    try:
        device = next(model.parameters()).device
        for start in range(0, len(split), batch_size):
            x, _, lengths = split.batch(slice(start, start + batch_size), device)
            out.append(torch.softmax(model(x, noise=False, lengths=lengths), dim=-1).cpu())
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.zeros(0, model.num_classes)


def write_predictions(path, probabilities: torch.Tensor, classes, true_labels=None) -> None:
    """CSV, one row per sequence: index, predicted label, [true label,] one probability per class."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", "predicted"] + (["label"] if true_labels is not None else [])
               + [f"prob_{c}" for c in classes])
    pred = probabilities.argmax(-1).tolist()
    for i, row in enumerate(probabilities.tolist()):
        w.writerow([i, classes[pred[i]]] + ([true_labels[i]] if true_labels is not None else [])
                   + [f"{p:.6g}" for p in row])
    atomic_write_text(Path(path), buf.getvalue())
