"""Adversarial perturbations (section 7): FGSM and PGD in the L-infinity norm.

Conventions follow torchattacks: the model returns logits, the loss is cross-entropy,
perturbed inputs are clamped to the data range when one is given ([0, 1] for MNIST), and
gradients flow through the whole recurrence with noise injection off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _input_grad(model, x, y, lengths=None):
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x, noise=False, lengths=lengths), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def _clamp(x, value_range):
    return x if value_range is None else x.clamp(*value_range)


def fgsm(model, x, y, eps: float, value_range=None, lengths=None) -> torch.Tensor:
    """x + eps * sign(grad_x loss), clamped to ``value_range``; padded steps (beyond
    ``lengths``) have zero gradient and are not moved."""
    with torch.enable_grad():
        grad = _input_grad(model, x, y, lengths)
    return _clamp(x + eps * grad.sign(), value_range).detach()


def pgd(model, x, y, eps: float, alpha: float | None = None, steps: int = 10, random_start: bool = True,
        value_range=None, generator=None, lengths=None) -> torch.Tensor:
    """Projected gradient descent (Madry et al.): ``steps`` signed steps of size ``alpha``
    (default 2.5*eps/steps), projected onto the eps-ball around x and the data range."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    adv = x.detach().clone()
    if random_start:
        # drawn on the CPU generator (as every perturbation), then moved to the model's device
        start = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        adv = adv + (start * 2 - 1) * eps
        adv = _clamp(adv, value_range)
    with torch.enable_grad():
        for _ in range(steps):
            adv = adv + alpha * _input_grad(model, adv, y, lengths).sign()
            adv = _clamp(x + (adv - x).clamp(-eps, eps), value_range).detach()
    return adv


@dataclass(frozen=True)
class FGSM:
    """Column ``fgsm_R``: FGSM with L-infinity radius R."""

    sigma: float
    value_range: tuple | None = None
    prefix = "fgsm"
    needs_model = True

    def attack(self, model, x, y, generator=None, lengths=None):
        return fgsm(model, x, y, self.sigma, self.value_range, lengths=lengths)


@dataclass(frozen=True)
class PGD:
    """Column ``pgd_R``: 10-step PGD with L-infinity radius R and a random start."""

    sigma: float
    value_range: tuple | None = None
    prefix = "pgd"
    needs_model = True

    def attack(self, model, x, y, generator=None, lengths=None):
        return pgd(model, x, y, self.sigma, value_range=self.value_range, generator=generator, lengths=lengths)
