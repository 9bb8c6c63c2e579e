"""Input-noise augmentation (``train.input_noise``, ``train.input_mult_noise``): training inputs
perturbed as a noisy sensor would, on real steps only, drawn from each member's own noise
generator; never at evaluation.

This is not the paper's mechanism. Eq (5) injects noise into the hidden state h of the SDE,
which Theorem 1 turns into an implicit regulariser of the model's Jacobians; augmentation
perturbs the data x and teaches the model the perturbation it will meet. They combine: a model
may train with both."""

from __future__ import annotations

import torch

from ..evaluation import real_steps_only


def draw_level(level, generator: torch.Generator) -> float:
    """A fixed level, or one drawn uniformly from [low, high] (one draw per batch)."""
    if isinstance(level, (list, tuple)):
        low, high = level
        return float(low) + (float(high) - float(low)) * float(torch.rand((), generator=generator))
    return float(level)


def augment_inputs(x: torch.Tensor, lengths, config, generators) -> torch.Tensor:
    """x (S, b, T, d) with member s's augmentation drawn from ``generators[s]``; lengths (S, b) or None."""
    out = []
    for s in range(x.shape[0]):
        clean, gen = x[s], generators[s]
        noisy = clean
        if config.input_noise:
            sigma = draw_level(config.input_noise, gen)
            noisy = noisy + sigma * torch.randn(clean.shape, generator=gen, dtype=clean.dtype, device=clean.device)
        if config.input_mult_noise:
            sigma = draw_level(config.input_mult_noise, gen)
            noisy = noisy * (1.0 + sigma * torch.randn(clean.shape, generator=gen, dtype=clean.dtype,
                                                       device=clean.device))
        out.append(real_steps_only(noisy, clean, None if lengths is None else lengths[s]))
    return torch.stack(out)
