"""Theorem 2: the classification margin of a deterministic RNN classifier and its lower bound.

* Score (Definition 2): o(s_i) = min_{j != y_i} sqrt(2) (e_{y_i} - e_j)^T softmax(V hbar_M[x_i]).
* Bound (eq 16): gamma(s_i) = o(s_i) / (C * sum_m delta_m * sup_xhat ||Phi_{M-1,m+1}[xhat]||_2),
  C = ||V||_2 * max_m sup_xhat ||df/dx_m||_2. (The paper prints Phi_{M,m+1}; the Jacobian of
  h_M w.r.t. x_m is Phi_{M-1,m+1} delta_m df/dx_m, which is what the proof bounds.)
* Empirical margin (Definition 1, Euclidean metric on the whole sequence): the norm of the
  smallest perturbation found that changes the prediction, by an L2 attack inside balls whose
  radius is bisected, then a bisection along the ray to the flip point. It is an upper bound
  on the true margin.

Why the bound holds and how the sup is approximated: along the segment from x_i to a flip
point x', the mean value theorem with ||d softmax|| <= 1/2 (Popoviciu) gives
||x' - x_i|| >= o(s_i) / (||V|| L), L = sup over the segment of ||d hbar_M / d x||, and
||d hbar_M / dx|| <= sum_m ||Phi_{M-1,m+1}|| delta_m ||df/dx_m||. :func:`margin_bounds` takes
each sup as the maximum over ``probes`` points on the segment from x_i to its flip point (the
points the argument needs, rather than all of conv(X)); :func:`certified_margin_bound` instead
bounds every Jacobian over all inputs in closed form for the drift of eq (3) (a rigorous but
much looser bound). Perturbations are not clamped to the data range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError, check_labels, check_sequences
from ..engine.integrate import step_sizes
from .jacobians import _require_recurrent, jacobian_norms


def scores(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """o(s_i) of Definition 2 for each sequence; positive iff x_i is classified correctly."""
    with torch.no_grad():
        p = torch.softmax(model(x, noise=False), dim=-1)
    py = p.gather(1, y[:, None])
    others = p.scatter(1, y[:, None], float("-inf"))
    return math.sqrt(2.0) * (py[:, 0] - others.max(dim=1).values)


def _margin_loss(model, x, y):
    """z_y - max_{j != y} z_j per sequence (negative once the prediction changed)."""
    z = model(x, noise=False)
    zy = z.gather(1, y[:, None])[:, 0]
    return zy - z.scatter(1, y[:, None], float("-inf")).max(dim=1).values


def _flipped(model, x, y) -> torch.Tensor:
    with torch.no_grad():
        return model(x, noise=False).argmax(-1) != y


def l2_attack(model, x, y, radius: torch.Tensor, steps: int = 20, restarts: int = 0, generator=None):
    """PGD in the L2 ball of radius ``radius`` (B,) around x, minimising the logit margin, from
    x and from ``restarts`` uniformly random points of the ball. Returns (point, success): the
    flipped iterate of smallest norm where one was found."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    r = radius.reshape(shape)
    alpha = 2.5 * r / steps
    best = x.clone()
    best_norm = torch.full_like(radius, float("inf"))
    dim = x[0].numel()
    for start in range(restarts + 1):
        if start == 0:
            adv = x.clone()
        else:
            d = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            d = d / d.flatten(1).norm(dim=1).reshape(shape)
            scale = torch.rand(x.shape[0], generator=generator, dtype=x.dtype).to(x.device) ** (1.0 / dim)
            adv = x + r * scale.reshape(shape) * d
        best, best_norm = _pgd_run(model, x, y, adv, r, alpha, steps, best, best_norm, shape)
    return best, torch.isfinite(best_norm)


def _pgd_run(model, x, y, adv, r, alpha, steps, best, best_norm, shape):
    for _ in range(steps):
        with torch.enable_grad():
            adv = adv.detach().requires_grad_(True)
            loss = _margin_loss(model, adv, y)
            (g,) = torch.autograd.grad(loss.sum(), adv)
        gnorm = g.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(shape)
        adv = adv.detach() - alpha * g / gnorm
        delta = adv - x
        dnorm = delta.flatten(1).norm(dim=1).reshape(shape)
        adv = x + delta * torch.clamp(r / dnorm.clamp_min(1e-12), max=1.0)
        flip = _flipped(model, adv, y)
        norm = (adv - x).flatten(1).norm(dim=1)
        better = flip & (norm < best_norm)
        best[better] = adv[better]
        best_norm = torch.where(better, norm, best_norm)
    return best, best_norm


@dataclass
class EmpiricalMargin:
    margin: torch.Tensor  # (B,) ||x' - x|| of the closest flip point found (0 if misclassified, inf if none)
    point: torch.Tensor  # (B, M, d_x) that flip point
    found: torch.Tensor  # (B,) bool: a flip point was found


def empirical_margin(model, x, y, attack_steps: int = 20, bisections: int = 10, ray_bisections: int = 12,
                     max_doublings: int = 20, restarts: int = 2, seed: int = 0) -> EmpiricalMargin:
    """Smallest perturbation norm that flips the prediction: an L2 attack (``restarts`` random
    starts besides x) inside balls whose radius grows until it succeeds and is then bisected."""
    gen = torch.Generator().manual_seed(seed)
    _require_recurrent(model)
    check_sequences(x, model.input_size)
    check_labels(y, model.num_classes, x.shape[0])
    B = x.shape[0]
    shape = (-1,) + (1,) * (x.dim() - 1)
    already = _flipped(model, x, y)
    point = x.clone()
    margin = torch.zeros(B, dtype=x.dtype)
    hi = torch.full((B,), 0.1 * float(x.flatten(1).norm(dim=1).mean().clamp_min(1e-3)), dtype=x.dtype)
    found = already.clone()
    # grow the radius until the attack succeeds
    for _ in range(max_doublings):
        todo = ~found
        if not todo.any():
            break
        adv, ok = l2_attack(model, x[todo], y[todo], hi[todo], attack_steps, restarts, gen)
        idx = todo.nonzero()[:, 0]
        point[idx[ok]] = adv[ok]
        found[idx[ok]] = True
        hi[idx[~ok]] *= 2
    search = found & ~already
    margin[search] = (point[search] - x[search]).flatten(1).norm(dim=1)
    lo = torch.zeros(B, dtype=x.dtype)
    hi = margin.clone()
    idx = search.nonzero()[:, 0]
    for _ in range(bisections if len(idx) else 0):
        mid = 0.5 * (lo[idx] + hi[idx])
        adv, ok = l2_attack(model, x[idx], y[idx], mid, attack_steps, restarts, gen)
        norm = (adv - x[idx]).flatten(1).norm(dim=1)
        better = ok & (norm < margin[idx])
        point[idx[better]] = adv[better]
        margin[idx[better]] = norm[better]
        hi[idx] = torch.where(ok, torch.minimum(mid, margin[idx]), hi[idx])
        lo[idx] = torch.where(ok, lo[idx], mid)
    if len(idx):  # shrink along the ray x -> flip point, keeping the flipped end
        direction = point[idx] - x[idx]
        t_lo, t_hi = torch.zeros(len(idx), dtype=x.dtype), torch.ones(len(idx), dtype=x.dtype)
        for _ in range(ray_bisections):
            t = 0.5 * (t_lo + t_hi)
            ok = _flipped(model, x[idx] + t.reshape(shape) * direction, y[idx])
            t_hi = torch.where(ok, t, t_hi)
            t_lo = torch.where(ok, t_lo, t)
        point[idx] = x[idx] + t_hi.reshape(shape) * direction
        margin[idx] = margin[idx] * t_hi
    margin[~found] = float("inf")  # no flip point within the largest radius tried
    return EmpiricalMargin(margin, point, found)


@dataclass
class MarginBound:
    score: torch.Tensor  # (B,) o(s_i)
    bound: torch.Tensor  # (B,) gamma(s_i) of eq (16); nan where o(s_i) <= 0
    phi_sup: torch.Tensor  # (B, M) sup over probes of ||Phi_{M-1,m+1}||
    phi_at_x: torch.Tensor  # (B, M) ||Phi_{M-1,m+1}|| along x_i's own trajectory
    C: torch.Tensor  # (B,) ||V|| * max_m sup ||df/dx_m||
    step: torch.Tensor  # (M,) max over units of delta_m


def margin_bounds(model, x, y, flip_points: torch.Tensor | None = None, probes: int = 5) -> MarginBound:
    """gamma(s_i) of eq (16) with each sup taken over ``probes`` points evenly spaced on the
    segment from x_i to ``flip_points[i]`` (both ends included); without flip points the sup
    is approximated by the value at x_i alone."""
    _require_recurrent(model)
    check_sequences(x, model.input_size)
    check_labels(y, model.num_classes, x.shape[0])
    if flip_points is not None and flip_points.shape != x.shape:
        raise ConfigError(f"flip_points must have the shape of x {tuple(x.shape)}, got {tuple(flip_points.shape)}")
    o = scores(model, x, y)
    B, M = x.shape[:2]
    if flip_points is None:
        pts = x.unsqueeze(1)
    else:
        t = torch.linspace(0, 1, max(2, probes), dtype=x.dtype).reshape(1, -1, 1, 1)
        pts = x.unsqueeze(1) + t * (flip_points - x).unsqueeze(1)
    P = pts.shape[1]
    norms = jacobian_norms(model, pts.reshape(B * P, *x.shape[1:]))
    phi = norms.phi.reshape(B, P, M)
    phi_sup = phi.amax(1)
    c_sup = norms.drift_input.reshape(B, P, M).amax(1).amax(1)
    step = norms.step[0]
    v_norm = torch.linalg.matrix_norm(model.decoder.weight.detach(), ord=2)
    C = v_norm * c_sup
    denom = C * (step * phi_sup).sum(1)
    bound = torch.where(o > 0, o / denom, torch.full_like(o, float("nan")))
    return MarginBound(o, bound, phi_sup, phi[:, 0], C, step)


def certified_margin_bound(model, x, y) -> torch.Tensor:
    """gamma(s_i) with every sup over all inputs bounded in closed form, for the drift of
    eq (3) with tanh (|a'| <= 1): ||df/dx|| <= ||U||, ||J_m|| <= ||I + diag(delta) alpha A|| +
    max(delta) ||W||, Phi bounded by the product of these. Rigorous and usually loose."""
    _require_recurrent(model)
    drift = model.drift
    if getattr(drift, "form", None) != "lipschitz":
        raise ConfigError(f"certified_margin_bound needs the drift of eq (3) (LipschitzDrift), got {type(drift).__name__}")
    o = scores(model, x, y)
    M, N = x.shape[1], drift.hidden_size
    with torch.no_grad():
        dt = step_sizes(model.step_size, M, N, x[:, 0, :1].new_zeros(1, N)).detach()
        two = lambda a: torch.linalg.matrix_norm(a.double(), ord=2)  # noqa: E731
        U, A, W = drift.encoder.weight.detach(), drift.A.detach(), drift.W.detach()
        eye = torch.eye(N, dtype=torch.float64)
        log_b = []
        for m in range(M):
            d = dt[min(m, dt.shape[0] - 1)].double().expand(N)
            log_b.append(math.log(float(two(eye + d[:, None] * drift.alpha * A.double())) + float(d.max()) * float(two(W))))
        log_b = torch.tensor(log_b, dtype=torch.float64)
        steps = torch.tensor([float(dt[min(m, dt.shape[0] - 1)].max()) for m in range(M)], dtype=torch.float64)
        # log of sum_m delta_m prod_{l=m+1}^{M-1} b_l
        suffix = torch.flip(torch.cumsum(torch.flip(log_b, [0]), 0), [0])  # sum_{l>=m} log b_l
        tail = torch.cat([suffix[1:], torch.zeros(1, dtype=torch.float64)])
        log_sum = torch.logsumexp(torch.log(steps) + tail, 0)
        log_c = math.log(float(two(model.decoder.weight.detach()))) + math.log(float(two(U)))
    bound = torch.exp(torch.log(o.double().clamp_min(1e-300)) - log_c - log_sum).to(x.dtype)
    return torch.where(o > 0, bound, torch.full_like(o, float("nan")))
