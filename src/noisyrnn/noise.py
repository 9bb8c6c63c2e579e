"""Noise schemes: how one step h_m -> h_{m+1} adds the drift and the injected noise.

Three schemes share the recurrence loop in :mod:`noisyrnn.engine.integrate`:

* :class:`Deterministic` - the Euler step of eq (6), ``h + delta*f``.
* :class:`EulerMaruyama` - the paper's SDE step, eq (5),
  ``h + delta*f + sigma(h, x) sqrt(delta) xi`` with Gaussian xi and any
  :class:`~noisyrnn.dynamics.Diffusion` (eq (4) by default).
* :class:`ResearchCodeNoise` - the scheme of the authors' research code that produced
  the paper's table rows: ``h + delta*m*f + add*xi`` with m = mult*U(0,1) + (1 - mult)
  per unit and step, xi ~ N(0, 1), the additive term *not* scaled by sqrt(delta).
  :func:`noisyrnn.dynamics.research_to_sde` gives its moment-matched eq (4) parameters.

Every scheme draws all of a sequence's noise in one call before the loop, from a Philox
stream keyed by an explicit ``torch.Generator`` when one is given (:mod:`noisyrnn.philox`:
vectorised and parallel on the CPU, about 3x faster than torch's CPU generator), so runs are
reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .engine import philox
from .dynamics import Diffusion, PaperDiffusion
from .errors import ConfigError, check_positive


@dataclass(frozen=True)
class LoopNoise:
    """A scheme's step coefficients (c, n) of ``h' = h + c f + n``, declared so that a loop can
    draw them itself: ``kind`` ``"deterministic"`` (c = dt, eq 6), ``"research"`` (c = dt (mscale
    U + mshift), n = add Z) or ``"eq4"`` (eq (4)-(5): c = dt + sqrt(dt) s2 xi, n = sqrt(dt) s1 xi);
    ``key_u``/``key_n``: the Philox keys of the uniform and normal streams."""

    kind: str
    mscale: float = 0.0
    mshift: float = 1.0
    add: float = 0.0
    s1: float = 0.0
    s2: float = 0.0
    key_u: int = 0
    key_n: int = 0


class NoiseScheme(nn.Module):
    """Base class. ``draw`` pre-samples the noise; ``step`` applies one update. ``affine``
    declares that every step is h + c*f + n (so :meth:`affine_coefficients` gives c, n and the
    fused recurrence can run it)."""

    affine = True
    # ``draws_in_loop``: ``in_loop`` gives the coefficients as the C++ cell engine draws them
    # inside its step loop (:mod:`noisyrnn.engine.cells`), the same numbers ``draw`` would give
    draws_in_loop = True

    def draw(self, steps: int, batch: int, hidden: int, like: torch.Tensor, generator):
        return None

    def in_loop(self, generator):
        """The :class:`LoopNoise` of one sequence batch, drawing the same
        Philox keys from ``generator`` as :meth:`draw` (so both paths see the same noise)."""
        return LoopNoise(kind="deterministic")

    def step(self, h, f, dt, u, noise_m):
        return h + dt * f

    def affine_coefficients(self, dt, drawn):
        """(c, n) with step = h + c*f + n for all m, shapes broadcastable to (M, B, N);
        None when the step is not affine in f (then the generic loop is used).
        ``dt`` has shape (M or 1, N or 1) as returned by ``integrator.step_sizes``."""
        return dt.unsqueeze(1), None

    def step_std(self, h, u, f, dt):
        """Square-root factor S of the covariance of the noise one step adds: (B, N) for
        diagonal noise (Cov = diag(S^2)), (B, N, r) for general noise (Cov = S S^T)."""
        raise ConfigError(f"{type(self).__name__} adds no noise (a deterministic step)")


class Deterministic(NoiseScheme):
    """Eq (6): h_{m+1} = h_m + delta_m f(h_m, x_m). Also what every scheme does with noise off."""


def sqrt_step(dt: torch.Tensor) -> torch.Tensor:
    """sqrt(delta) for eq (5), refusing non-positive steps (a learned step can reach them)
    with a named error instead of NaN states."""
    if bool((dt <= 0).any()):
        raise ConfigError(
            f"Euler-Maruyama needs positive step sizes, but the smallest is {float(dt.detach().min()):.4g} "
            "(a learned step went non-positive): lower the learning rate or set learn_step = false"
        )
    return torch.sqrt(dt)


class EulerMaruyama(NoiseScheme):
    """Eq (5): h_{m+1} = h_m + f delta_m + sigma(h_m, x_m) sqrt(delta_m) xi_m, xi_m ~ N(0, I_r)."""

    def __init__(self, diffusion: Diffusion | None = None) -> None:
        super().__init__()
        self.diffusion = diffusion if diffusion is not None else PaperDiffusion()

    @property
    def affine(self) -> bool:
        """eq (4)'s diffusion eps (sigma1 + sigma2 f) keeps the step affine in f; others need not."""
        return isinstance(self.diffusion, PaperDiffusion)

    draws_in_loop = affine  # the cell engine draws eq (4)'s noise in its loop, as for the affine path

    def in_loop(self, generator):
        d = self.diffusion
        return LoopNoise(kind="eq4", s1=d.eps * d.sigma1, s2=d.eps * d.sigma2, key_n=philox.draw_key(generator))

    def draw(self, steps, batch, hidden, like, generator):
        r = self.diffusion.brownian_dim(hidden)
        return philox.randn((steps, batch, r), generator, dtype=like.dtype, device=like.device)

    def step(self, h, f, dt, u, xi):
        g = self.diffusion(h, u, f)
        if self.diffusion.noise_type == "diagonal":
            g_xi = g * xi
        else:
            g_xi = torch.einsum("bnr,br->bn", g, xi)
        return h + dt * f + sqrt_step(dt) * g_xi

    def step_std(self, h, u, f, dt):
        """sqrt(delta) sigma(h, x): the covariance of eq (5)'s increment is delta sigma sigma^T."""
        g = self.diffusion(h, u, f)
        root = sqrt_step(dt)
        return root * g if self.diffusion.noise_type == "diagonal" else root.unsqueeze(-1) * g

    def affine_coefficients(self, dt, xi):
        d = self.diffusion
        if not isinstance(d, PaperDiffusion):
            return None
        root = sqrt_step(dt).unsqueeze(1)
        c = dt.unsqueeze(1) + root * (d.eps * d.sigma2) * xi if d.sigma2 else dt.unsqueeze(1)
        n = root * (d.eps * d.sigma1) * xi if d.sigma1 else None
        return c, n


class ResearchCodeNoise(NoiseScheme):
    """The research code's noisy solver: h + delta*m*f + add*xi (see the module docstring)."""

    def __init__(self, mult_noise: float = 0.0, add_noise: float = 0.0) -> None:
        super().__init__()
        self.mult_noise = check_positive(mult_noise, "mult_noise", allow_zero=True)
        self.add_noise = check_positive(add_noise, "add_noise", allow_zero=True)

    def draw(self, steps, batch, hidden, like, generator):
        shape = (steps, batch, hidden)
        kw = dict(dtype=like.dtype, device=like.device)
        m = philox.rand(shape, generator, **kw, scale=self.mult_noise, shift=1.0 - self.mult_noise)
        a = philox.randn(shape, generator, **kw, scale=self.add_noise)
        return m, a  # each (T, B, N); the loop takes (m[t], a[t])

    def step(self, h, f, dt, u, noise_m):
        return h + dt * noise_m[0] * f + noise_m[1]

    def in_loop(self, generator):
        key_u = philox.draw_key(generator)  # the order of draw(): the uniform factor, then the normal
        return LoopNoise(kind="research", mscale=self.mult_noise, mshift=1.0 - self.mult_noise, add=self.add_noise,
                         key_u=key_u, key_n=philox.draw_key(generator))

    def affine_coefficients(self, dt, drawn):
        m, a = drawn
        return dt.unsqueeze(1) * m, a

    def step_std(self, h, u, f, dt):
        """Per unit, Var = (delta f)^2 mult^2 / 12 + add^2: the uniform drift factor has variance
        mult^2/12 (its mean 1 - mult/2 is a drift change, not noise); the moments that
        :func:`noisyrnn.dynamics.research_to_sde` matches."""
        var = (dt * f * self.mult_noise) ** 2 / 12.0 + self.add_noise**2
        return torch.sqrt(var.clamp_min(1e-30)) if self.add_noise == 0 else torch.sqrt(var)

    def extra_repr(self) -> str:
        return f"mult_noise={self.mult_noise}, add_noise={self.add_noise}"
