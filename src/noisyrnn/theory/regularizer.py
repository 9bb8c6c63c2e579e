"""Theorem 1: the explicit regulariser that noise injection implies in the small-noise limit.

For the E-M recursion ``h_{m+1} = h_m + delta_m f(h_m, x_m) + eps sigma(h_m, x_m) sqrt(delta_m) xi_m``
(eq 5 with sigma -> eps sigma) and a loss l(h_M),

    E l(h_M) = l(hbar_M) + eps^2 / 2 * (Q + R) + O(eps^3),                      eq (9)

where hbar is the deterministic trajectory (eq 6). Expanding h_m = hbar_m + eps a_m + eps^2 b_m:
``a_{m+1} = J_m a_m + sigma_m sqrt(delta_m) xi_m`` with the state-to-state Jacobians
J_m = I + delta_m df/dh (eq 7), so Cov(a_M) = sum_m delta_m Phi_{M-1,m+1} sigma_m sigma_m^T Phi^T
(Phi products of J's, eq 8) and

* R = E a_M^T H a_M = sum_m delta_m tr(sigma_m^T Phi_{M-1,m+1}^T H Phi_{M-1,m+1} sigma_m), eq (11);
* Q = 2 grad l . E b_M = grad l^T sum_k delta_k Phi_{M-1,k+1} v_k with
  [v_k]^p = tr(d^2 f^p/dh^2 (hbar_k) Cov(a_k)), eqs (10)/(12) written as the nested sum
  the expansion gives (the paper prints it as a product of two sums).

Everything is computed with ``torch.func`` (jacrev / hessian), per sequence, for any drift f
and any diffusion sigma (diagonal or general r-dimensional).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import grad, hessian, jacrev

from ..engine.integrate import integrate
from ..noise import EulerMaruyama


@dataclass
class RegularizerTerms:
    Q: float
    R: float
    loss: float  # l(hbar_M)

    @property
    def gap(self) -> float:
        """(Q + R) / 2: the predicted E l(h_M) - l(hbar_M), divided by eps^2."""
        return 0.5 * (self.Q + self.R)


def _sigma_matrix(diffusion, h, u, f):
    """sigma(h, x) as a (d_h, r) matrix for a single state h of shape (d_h,)."""
    g = diffusion(h.unsqueeze(0), u.unsqueeze(0), f.unsqueeze(0))[0]
    return torch.diag(g) if diffusion.noise_type == "diagonal" else g


def deterministic_path(drift, h0, u, deltas):
    """hbar_0..hbar_M (eq 6) for one sequence: h0 (d_h,), u (M, d_u), deltas (M,), through the
    engine's generic loop (:func:`noisyrnn.engine.integrate.integrate`)."""
    return integrate(drift, h0.unsqueeze(0), u.unsqueeze(0), deltas, return_states=True, backend="loop")[0]


def regularizer_terms(drift, diffusion, loss_fn, h0, u, deltas) -> RegularizerTerms:
    """Q and R of Theorem 1 for one sequence (h0: (d_h,), u: encoded inputs (M, d_u),
    deltas: (M,) step sizes), for ``loss_fn(h_M) -> scalar``."""
    with torch.no_grad():
        hbar = deterministic_path(drift, h0, u, deltas)
    M, d = u.shape[0], h0.shape[0]
    f_of = lambda h, um: drift(h.unsqueeze(0), um.unsqueeze(0))[0]  # noqa: E731
    J, sig, hess_f = [], [], []
    cov = torch.zeros(d, d, dtype=h0.dtype)
    covs = []
    for m in range(M):
        h, um = hbar[m], u[m]
        Jm = torch.eye(d, dtype=h0.dtype) + deltas[m] * jacrev(f_of)(h, um)
        f = f_of(h, um)
        S = _sigma_matrix(diffusion, h, um, f)
        covs.append(cov)
        hess_f.append(hessian(f_of)(h, um))  # (d, d, d): [p, i, j]
        J.append(Jm)
        sig.append(S)
        cov = Jm @ cov @ Jm.T + deltas[m] * S @ S.T
    hM = hbar[M]
    H = hessian(loss_fn)(hM)
    g = grad(loss_fn)(hM)
    R = torch.trace(H @ cov)
    # Q: w_k = Phi_{M-1,k+1}^T grad l by a backward recursion
    Q = torch.zeros((), dtype=h0.dtype)
    w = g
    for k in range(M - 1, -1, -1):
        v = torch.einsum("pij,ij->p", hess_f[k], covs[k])
        Q = Q + deltas[k] * (w @ v)
        w = J[k].T @ w
    return RegularizerTerms(Q.detach().item(), R.detach().item(), loss_fn(hM).detach().item())


@dataclass
class MonteCarloGap:
    eps: float
    gap: float  # estimate of E l(h_M) - l(hbar_M)
    stderr: float
    predicted: float  # eps^2/2 (Q + R)

    @property
    def relative_error(self) -> float:
        return abs(self.gap - self.predicted) / abs(self.predicted)


def monte_carlo_gap(drift, diffusion, loss_fn, h0, u, deltas, eps: float, paths: int = 100_000,
                    generator=None, terms: RegularizerTerms | None = None) -> MonteCarloGap:
    """E l(h_M) - l(hbar_M) by simulating eq (5) with noise eps*sigma on ``paths`` paths.

    Uses the linearised path a_M (same Brownian increments) as a control variate:
    E grad l . a_M = 0 exactly, and subtracting eps * grad l . a_M removes the O(eps) part of
    the variance, so the relative error of the estimate does not grow as eps -> 0.
    """
    terms = terms or regularizer_terms(drift, diffusion, loss_fn, h0, u, deltas)
    M, d = u.shape[0], h0.shape[0]
    with torch.no_grad():
        hbar = deterministic_path(drift, h0, u, deltas)
        f_of = lambda h, um: drift(h.unsqueeze(0), um.unsqueeze(0))[0]  # noqa: E731
        h = h0.expand(paths, d).clone()
        a = torch.zeros(paths, d, dtype=h0.dtype)
        scheme = EulerMaruyama(diffusion)  # the engine's eq (5) step, with noise eps * sigma
        for m in range(M):
            um = u[m].expand(paths, -1)
            f = drift(h, um)
            xi = torch.randn(paths, diffusion.brownian_dim(d), generator=generator, dtype=h0.dtype)
            Jm = torch.eye(d, dtype=h0.dtype) + deltas[m] * jacrev(f_of)(hbar[m], u[m])
            S = _sigma_matrix(diffusion, hbar[m], u[m], f_of(hbar[m], u[m]))
            a = a @ Jm.T + (xi @ S.T) * deltas[m].sqrt()
            h = scheme.step(h, f, deltas[m], um, eps * xi)
        losses = torch.vmap(loss_fn)(h)
        gl = grad(loss_fn)(hbar[M])
        base = loss_fn(hbar[M]).item()
        samples = losses - base - eps * (a @ gl)
        gap = float(samples.mean())
        stderr = float(samples.std() / paths**0.5)
    return MonteCarloGap(eps, gap, stderr, eps**2 * terms.gap)
