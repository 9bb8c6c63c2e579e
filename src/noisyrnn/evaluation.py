"""Accuracy on clean and perturbed inputs, with noise injection off (section 7)."""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F

from .data.task import Split
from .perturbations import parse_column


@torch.no_grad()
def evaluate(model, split: Split, batch_size: int = 1000, perturbation=None, generator=None) -> dict:
    """{'accuracy', 'loss'} of ``model`` on ``split``; the model runs with noise off.
    Adversarial perturbations (``needs_model``) differentiate through the model."""
    correct, loss_sum = 0, 0.0
    device = next(model.parameters()).device
    for start in range(0, len(split), batch_size):
        x = split.x[start:start + batch_size]
        y = split.y[start:start + batch_size].to(device)
        if perturbation is not None and not getattr(perturbation, "needs_model", False):
            x = perturbation(x, generator)  # drawn on the CPU: the same draws on any device
        x = x.to(device)
        if getattr(perturbation, "needs_model", False):
            x = perturbation.attack(model, x, y, generator)
        logits = model(x, noise=False)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(-1) == y).sum())
    n = len(split)
    return {"accuracy": correct / n, "loss": loss_sum / n}


def perturbation_seed(seed: int, column: str) -> int:
    """The draws of column ``column`` depend on (seed, column name) only, not on column order."""
    return (int(seed) * 1_000_003 + zlib.crc32(column.encode())) % (2**63)


def robustness(model, split: Split, columns, seed: int = 0, batch_size: int = 1000,
               value_range=None) -> dict[str, float]:
    """Accuracy per column (``clean``, ``white_0.4``, ``sp_0.1``, ``fgsm_0.05``, ...); each
    column's draws seeded by ``seed``; ``value_range`` is the clean data's (min, max)."""
    parsed = [(c, parse_column(c, value_range)) for c in columns]
    out = {}
    was_training = model.training
    model.eval()
    try:
        for column, pert in parsed:
            gen = torch.Generator().manual_seed(perturbation_seed(seed, column))
            out[column] = evaluate(model, split, batch_size, pert, gen)["accuracy"]
    finally:
        model.train(was_training)
    return out
