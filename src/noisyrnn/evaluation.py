"""Accuracy (classification) or RMSE and MAE (regression) on clean and perturbed inputs, with noise
injection off (section 7)."""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F

from .data.task import Split
from .memory import evaluation_batch
from .perturbations import parse_column


def perturbed_batches(model, split: Split, batch_size: int, perturbation=None, generator=None):
    """(x, y, lengths) of ``split`` in batches on the model's device, x perturbed on real steps only
    (random perturbations drawn on the CPU, so the same on any device; attacks, ``needs_model``,
    run on the model)."""
    device = next(model.parameters()).device
    attack = getattr(perturbation, "needs_model", False)
    batch_size = evaluation_batch(model, split.x.shape[1], batch_size, attack)
    for start in range(0, len(split), batch_size):
        x = split.x[start:start + batch_size]
        y = split.y[start:start + batch_size].to(device)
        lengths = None if split.lengths is None else split.lengths[start:start + batch_size]
        if perturbation is not None and not attack:
            x = real_steps_only(perturbation(x, generator), x, lengths)
        x = x.to(device)
        lengths = None if lengths is None else lengths.to(device)
        if attack:
            x = real_steps_only(perturbation.attack(model, x, y, generator, lengths=lengths), x, lengths)
        yield x, y, lengths


@torch.no_grad()
def evaluate(model, split: Split, batch_size: int = 1000, perturbation=None, generator=None) -> dict:
    """{'accuracy', 'loss'} of ``model`` on ``split``; the model runs with noise off.
    Adversarial perturbations (``needs_model``) differentiate through the model. On padded
    sequences perturbations touch real steps only (padded steps keep their values)."""
    correct, loss_sum = 0, 0.0
    for x, y, lengths in perturbed_batches(model, split, batch_size, perturbation, generator):
        logits = model(x, noise=False, lengths=lengths)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(-1) == y).sum())
    n = len(split)
    return {"accuracy": correct / n, "loss": loss_sum / n}


def real_steps_only(perturbed: torch.Tensor, clean: torch.Tensor, lengths) -> torch.Tensor:
    """``perturbed`` on each sequence's real steps, ``clean`` on its padding."""
    if lengths is None:
        return perturbed
    real = torch.arange(clean.shape[1], device=clean.device).unsqueeze(0) < lengths.to(clean.device).unsqueeze(1)
    return torch.where(real.unsqueeze(-1), perturbed, clean)


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


@torch.no_grad()
def regression_errors(model, split: Split, columns, seed: int = 0, batch_size: int = 1000,
                      target_normalization=None) -> dict[str, dict[str, float]]:
    """{column: {"rmse", "mae"}} of a regressor on ``split`` (targets z-scored as trained), clean
    and under input perturbations (random ones only: the attacks are written for a classifier's
    loss), in the targets' own units when ``target_normalization`` is given."""
    mean = std = None
    if target_normalization is not None:
        mean, std = torch.tensor(target_normalization.mean), torch.tensor(target_normalization.std)
    was_training = model.training
    model.eval()
    out = {}
    try:
        for column in columns:
            pert = parse_column(column)
            if getattr(pert, "needs_model", False):
                raise ValueError(f"column {column!r} is an attack on a classifier; regression takes clean and random "
                                 "perturbations (white_S, mult_S, sp_A)")
            gen = torch.Generator().manual_seed(perturbation_seed(seed, column))
            sq = ab = 0.0
            count = 0
            for x, y, lengths in perturbed_batches(model, split, batch_size, pert, gen):
                pred = model(x, noise=False, lengths=lengths)
                if mean is not None:
                    pred, y = pred * std + mean, y * std + mean
                sq += float((pred - y).double().square().sum())
                ab += float((pred - y).double().abs().sum())
                count += y.numel()
            out[column] = {"rmse": (sq / count) ** 0.5, "mae": ab / count}
    finally:
        model.train(was_training)
    return out
