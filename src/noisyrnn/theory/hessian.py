"""The loss landscape: Hessian of the training loss w.r.t. the parameters, matrix-free.

Hessian-vector products come from ``torch.func`` (forward-over-reverse: jvp of grad), so
nothing of size P x P is formed. On top of them: the top eigenvalues by Lanczos with full
reorthogonalisation, the trace by Hutchinson's estimator, and the spectral density by
stochastic Lanczos quadrature (Ghorbani et al. 2019).
"""

from __future__ import annotations

import math

import torch
from torch.func import functional_call, grad, jvp


class LossHessian:
    """H = d^2 L / d theta^2 of ``loss(model(x), y)`` at the model's current parameters."""

    def __init__(self, model, x, y, loss=torch.nn.functional.cross_entropy, noise: bool = False, lengths=None):
        self.model, self.x, self.y, self.loss = model, x, y, loss
        self.kwargs = {} if lengths is None else {"lengths": lengths}  # padded sequences' own lengths
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        self.buffers = {n: b for n, b in model.named_buffers()}
        self.shapes = [self.params[n].shape for n in self.names]
        self.size = sum(p.numel() for p in self.params.values())

    def _loss_of(self, flat):
        params = {}
        offset = 0
        for name, shape in zip(self.names, self.shapes):
            n = math.prod(shape)
            params[name] = flat[offset:offset + n].view(shape)
            offset += n
        fused = getattr(self.model, "fused", None)
        if fused:  # the hand-written recurrence Function does not support torch.func transforms
            self.model.fused = False
        try:
            out = functional_call(self.model, {**params, **self.buffers}, (self.x,), self.kwargs)
        finally:
            if fused:
                self.model.fused = True
        return self.loss(out, self.y)

    def flat_params(self) -> torch.Tensor:
        return torch.cat([self.params[n].reshape(-1) for n in self.names])

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        return jvp(grad(self._loss_of), (self.flat_params(),), (v,))[1]

    def dense(self) -> torch.Tensor:
        """The full P x P Hessian (for small models and tests)."""
        return torch.func.hessian(self._loss_of)(self.flat_params())


def lanczos(matvec, size: int, steps: int, dtype=torch.float64, generator=None, v0=None):
    """Lanczos tridiagonalisation with full reorthogonalisation: (alphas, betas, Q)."""
    v = torch.randn(size, generator=generator, dtype=dtype) if v0 is None else v0.to(dtype)
    v = v / v.norm()
    Q = [v]
    alphas, betas = [], []
    for j in range(min(steps, size)):
        w = matvec(Q[-1]).to(dtype)
        a = torch.dot(w, Q[-1])
        alphas.append(a)
        basis = torch.stack(Q)
        w = w - basis.T @ (basis @ w)  # full reorthogonalisation (twice is enough)
        w = w - basis.T @ (basis @ w)
        b = w.norm()
        if j == min(steps, size) - 1 or b < 1e-10:
            break
        betas.append(b)
        Q.append(w / b)
    return torch.stack(alphas), torch.stack(betas) if betas else torch.zeros(0, dtype=dtype), torch.stack(Q)


def _tridiag(alphas, betas):
    T = torch.diag(alphas)
    if len(betas):
        T = T + torch.diag(betas, 1) + torch.diag(betas, -1)
    return T


def top_eigenvalues(hessian: LossHessian, k: int = 1, steps: int = 50, generator=None) -> torch.Tensor:
    """The k largest eigenvalues of the loss Hessian (Lanczos on Hessian-vector products)."""
    matvec = lambda v: hessian.hvp(v.to(hessian.flat_params().dtype))  # noqa: E731
    alphas, betas, _ = lanczos(matvec, hessian.size, steps, generator=generator)
    return torch.linalg.eigvalsh(_tridiag(alphas, betas)).flip(0)[:k]


def hutchinson_trace(hessian: LossHessian, samples: int = 100, generator=None) -> tuple[float, float]:
    """tr(H) ~ mean of v^T H v over Rademacher v; returns (estimate, standard error)."""
    dtype = hessian.flat_params().dtype
    vals = []
    for _ in range(samples):
        v = torch.randint(0, 2, (hessian.size,), generator=generator).to(dtype) * 2 - 1
        vals.append(float(v @ hessian.hvp(v)))
    t = torch.tensor(vals, dtype=torch.float64)
    return float(t.mean()), float(t.std() / math.sqrt(samples))


def lanczos_spectrum(hessian: LossHessian, steps: int = 40, generator=None):
    """One Lanczos run from a random start: Ritz values (nodes) and the squared first
    components of their eigenvectors (weights, summing to 1). The largest node estimates
    the top eigenvalue; (nodes, weights) is one probe of stochastic Lanczos quadrature."""
    matvec = lambda v: hessian.hvp(v.to(hessian.flat_params().dtype))  # noqa: E731
    a, b, _ = lanczos(matvec, hessian.size, steps, generator=generator)
    evals, evecs = torch.linalg.eigh(_tridiag(a, b))
    return evals, evecs[0] ** 2


def smoothed_density(nodes: torch.Tensor, weights: torch.Tensor, grid=None, width: float | None = None):
    """(grid, density): Gaussian-smoothed sum of point masses ``weights`` at ``nodes``;
    ``width`` defaults to 1% of the spectral range."""
    lo, hi = float(nodes.min()), float(nodes.max())
    width = width or max(1e-8, 0.01 * (hi - lo))
    grid = torch.linspace(lo - 5 * width, hi + 5 * width, 400, dtype=torch.float64) if grid is None else grid
    dens = (weights[None, :] * torch.exp(-((grid[:, None] - nodes[None, :]) ** 2) / (2 * width**2))).sum(1)
    return grid, dens / (width * math.sqrt(2 * math.pi))


def spectral_density(hessian: LossHessian, steps: int = 40, probes: int = 4, grid=None, width: float | None = None,
                     generator=None):
    """Stochastic Lanczos quadrature: (grid, density) of the Hessian's eigenvalue density,
    Gaussian-smoothed with ``width`` (default 1% of the spectral range)."""
    nodes, weights = [], []
    for _ in range(probes):
        n, w = lanczos_spectrum(hessian, steps, generator)
        nodes.append(n)
        weights.append(w / probes)
    return smoothed_density(torch.cat(nodes), torch.cat(weights), grid, width)
