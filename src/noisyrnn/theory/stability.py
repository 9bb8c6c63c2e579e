"""Theorem 3: almost-sure exponential stability of the continuous-time NRNN, and the sample
Lyapunov exponent measured on simulated paths.

For dh = [A h + a(W h + U x + b)] dt + sigma(h, x) dB with a monotone, L_a-Lipschitz and
sigma1 ||e|| <= ||sigma(h + e) - sigma(h)||_F <= sigma2 ||e||, the sample Lyapunov exponent
of the perturbation e_t = h'_t - h_t (eq 19, same Brownian path) satisfies, a.s.,

    phi + lambda_min(A_sym) <= Lambda <= psi + L_a sigma_max(W) + lambda_max(A_sym),   eq (20)

with phi = -sigma2^2 + sigma1^2 / 2 and psi = -sigma1^2 + sigma2^2 / 2. (These sigma1, sigma2
bound the diffusion's increments; they are not eq (4)'s parameters.)
"""

from __future__ import annotations

import torch

from ..dynamics import Diffusion
from ..noise import EulerMaruyama


def lyapunov_bounds(A: torch.Tensor, W: torch.Tensor, sigma1: float, sigma2: float,
                    lipschitz_a: float = 1.0) -> tuple[float, float]:
    """(lower, upper) of eq (20)."""
    sym = 0.5 * (A + A.T)
    eig = torch.linalg.eigvalsh(sym.double())
    phi = -sigma2**2 + sigma1**2 / 2
    psi = -sigma1**2 + sigma2**2 / 2
    smax = float(torch.linalg.matrix_norm(W.double(), ord=2))
    return phi + float(eig[0]), psi + lipschitz_a * smax + float(eig[-1])


def proven_lyapunov_bounds(A: torch.Tensor, W: torch.Tensor, rho: float, sigma2: float, sigma1: float = 0.0,
                           lipschitz_a: float = 1.0) -> tuple[float, float]:
    """Bounds on Lambda from Ito's formula for log||e_t|| under weaker, checkable assumptions.

    d log||e|| = [e^T A e + e^T Delta_a + ||Delta_sigma||_F^2 / 2 - |e^T Delta_sigma|^2 / ||e||^2] / ||e||^2 dt
    + martingale, so with sigma1 ||e|| <= ||Delta_sigma(e)||_F <= sigma2 ||e||,
    |e^T Delta_sigma(e)| >= rho ||e||^2 and |e^T Delta_a| <= L_a sigma_max(W) ||e||^2:

        sigma1^2/2 - sigma2^2 + lambda_min(A_sym) - L_a sigma_max(W) <= Lambda
            <= sigma2^2/2 - rho^2 + lambda_max(A_sym) + L_a sigma_max(W).

    Eq (20) uses rho = sigma1, which needs |e^T Delta_sigma(e)| >= sigma1 ||e||^2: true for
    sigma(h) = s h with one Brownian motion, not for diagonal noise with independent
    components (there rho = s / sqrt(d) only); and its lower bound drops the -L_a sigma_max(W)
    term, which needs e^T Delta_a >= 0.
    """
    sym = 0.5 * (A + A.T)
    eig = torch.linalg.eigvalsh(sym.double())
    smax = lipschitz_a * float(torch.linalg.matrix_norm(W.double(), ord=2))
    lower = sigma1**2 / 2 - sigma2**2 + float(eig[0]) - smax
    upper = sigma2**2 / 2 - rho**2 + float(eig[-1]) + smax
    return lower, upper


class _AutonomousDiffusion(Diffusion):
    """A diffusion ``sigma(h) -> (B, d, r)`` of the state alone, as a :class:`Diffusion`."""

    noise_type = "general"

    def __init__(self, sigma) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, h, u, f):
        return self.sigma(h)


def sample_lyapunov_exponents(drift, diffusion, h0: torch.Tensor, horizon: float, dt: float,
                              generator=None, separation: float = 1e-6, renorm_every: int = 1) -> torch.Tensor:
    """Measured Lambda = (1/T) log(||e_T|| / ||e_0||) of eq (19) for each of B paths.

    ``drift(h) -> (B, d)``, ``diffusion(h) -> (B, d, r)``; h0: (B, d). Both trajectories h and
    h' = h + e are integrated by Euler-Maruyama with the same Brownian increments; e is
    rescaled to ``separation`` every ``renorm_every`` steps and the log-growth accumulated
    (Benettin's method), so the estimate does not under- or overflow; the separation is
    relative to max(1, ||h||), so it stays resolvable when h grows.
    """
    B, d = h0.shape
    steps = int(round(horizon / dt))
    direction = torch.randn(B, d, generator=generator, dtype=h0.dtype)
    sep = separation * h0.norm(dim=1).clamp_min(1.0)
    e = sep.unsqueeze(1) * direction / direction.norm(dim=1, keepdim=True)
    h, hp = h0.clone(), h0 + e
    log_growth = torch.zeros(B, dtype=h0.dtype)
    scheme = EulerMaruyama(_AutonomousDiffusion(diffusion))  # the engine's eq (5) step
    step = torch.tensor(float(dt), dtype=h0.dtype)
    r = diffusion(h[:1]).shape[-1]
    for k in range(steps):
        xi = torch.randn(B, r, generator=generator, dtype=h0.dtype)  # the same increments for both
        h_next = scheme.step(h, drift(h), step, None, xi)
        hp = scheme.step(hp, drift(hp), step, None, xi)
        h = h_next
        if (k + 1) % renorm_every == 0 or k == steps - 1:
            e = hp - h
            norm = e.norm(dim=1)
            log_growth += torch.log(norm / sep)
            sep = separation * h.norm(dim=1).clamp_min(1.0)
            hp = h + e * (sep / norm).unsqueeze(1)
    return log_growth / (steps * dt)


def lipschitz_nrnn_drift(A: torch.Tensor, W: torch.Tensor, drive: torch.Tensor | None = None):
    """f(h) = A h + tanh(W h + drive): eq (3) with a constant input drive U x + b."""
    from ..dynamics import eq3_drift

    drive = torch.zeros(W.shape[0], dtype=W.dtype) if drive is None else drive
    weight = torch.cat([A.T, W.T], dim=1)
    return lambda h: eq3_drift(h, weight, drive)


def scalar_multiplicative_diffusion(scale: float, additive: float = 0.0):
    """sigma(h) dB = scale * h dB_0 + additive * dB_{1..d}: one Brownian motion multiplies the
    whole state. Delta_sigma(e) = scale * e in the first column, so ||Delta_sigma||_F = scale ||e||
    and |e^T Delta_sigma(e)| = scale ||e||^2: eq (20) holds with sigma1 = sigma2 = scale."""

    def sigma(h):
        cols = [scale * h.unsqueeze(2)]
        if additive:
            cols.append(additive * torch.eye(h.shape[1], dtype=h.dtype).expand(h.shape[0], -1, -1))
        return torch.cat(cols, dim=2)
    return sigma


def multiplicative_diffusion(scale: float, additive: float = 0.0):
    """sigma(h) = scale * diag(h) + additive * I (r = d, independent components, like eq (4)):
    ||sigma(h+e) - sigma(h)||_F = scale ||e|| (Theorem 3's assumption with sigma1 = sigma2 = scale),
    but |e^T Delta_sigma(e)| only >= scale ||e||^2 / sqrt(d): the lower bound of eq (20) holds,
    its upper bound need not (see :func:`proven_lyapunov_bounds`, rho = scale / sqrt(d))."""

    def sigma(h):
        eye = torch.eye(h.shape[1], dtype=h.dtype)
        return scale * torch.diag_embed(h) + additive * eye
    return sigma
