"""Training with the explicit regulariser of Theorem 1 instead of injecting noise, eq (18).

For a classifier trained with cross-entropy on logits z = V hbar_M + c, Theorem 1 (with Q
dropped, as the paper does for eq 18) says noise injection minimises on average

    l(hbar_M) + eps^2 R_hat,   R_hat = 1/2 sum_m delta_m ||M_hat Phi_{M-1,m+1} sigma_m||_F^2,

where M_hat^T M_hat = H, the Hessian of the loss in h_M. For cross-entropy
H = V^T (diag(p) - p p^T) V, so ||M_hat G||_F^2 = sum over the columns g of G of the
p-weighted variance of the logit changes V g: no Cholesky factor is needed, and the
whole penalty is smooth in the parameters.

:func:`explicit_regularizer` computes R_hat per sequence for a batch, differentiably: one
deterministic pass over K copies of the batch (K = classes), one backward pass with
one-hot cotangents on the K logits that returns dz_k / dh_{m+1} = V Phi_{M-1,m+1} for every
m at once, then the variance sum. Training backpropagates through that backward pass
(double backward). The noise covariance per step comes from the model's own noise scheme
(:func:`noise_std`), with eps folded in, so the penalty is the one that scheme implies:

* Euler-Maruyama (eq 5): Cov = delta_m sigma sigma^T;
* the research-code scheme: Var = delta_m^2 f^2 mult^2 / 12 + add^2 per unit (its uniform
  drift factor has variance mult^2/12; its mean 1 - mult/2 is a drift change, not noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError, check_labels, check_sequences
from ..engine.integrate import step_mask, step_sizes
from ..noise import Deterministic, EulerMaruyama, ResearchCodeNoise
from .jacobians import _require_recurrent


def noise_std(scheme, h, u, f, dt):
    """Square-root factor S of the covariance of the noise one step adds (eps included), from
    the scheme's own :meth:`~noisyrnn.noise.NoiseScheme.step_std`: (B, N) for diagonal noise
    (Cov = diag(S^2)), (B, N, r) for general noise (Cov = S S^T)."""
    if not isinstance(scheme, (EulerMaruyama, ResearchCodeNoise)):
        raise ConfigError(
            f"the explicit regulariser needs a noise scheme (EulerMaruyama or ResearchCodeNoise); got "
            f"{type(scheme).__name__ if scheme is not None else 'none (a deterministic model)'}"
        )
    return scheme.step_std(h, u, f, dt)


@dataclass
class ExplicitObjective:
    logits: torch.Tensor  # (B, K) of the deterministic pass
    loss: torch.Tensor  # mean cross-entropy l(hbar_M)
    penalty: torch.Tensor  # (B,) R_hat per sequence (eq 18, eps folded into the scheme)


def explicit_regularizer(model, x: torch.Tensor, y: torch.Tensor, scheme=None, lengths=None) -> ExplicitObjective:
    """Cross-entropy and R_hat of eq (18) for a batch; both differentiable in the parameters.
    With ``lengths`` (padded sequences) padded steps neither move the state nor add noise, so
    they add nothing to R_hat."""
    _require_recurrent(model)
    check_sequences(x, model.input_size)
    check_labels(y, model.num_classes, x.shape[0])
    scheme = scheme if scheme is not None else model.scheme
    B, M = x.shape[:2]
    K = model.num_classes
    drift = model.drift
    xr = x.repeat(K, 1, 1)  # copy k of the batch takes the cotangent e_k
    u = drift.encode(xr)
    h = model.initial_state(xr)
    dt = step_sizes(model.step_size, M, model.hidden_size, h)
    fstep = drift.step_function()
    euler = Deterministic()
    mask = step_mask(lengths, B, M, x)
    live = None if mask is None else mask.repeat(1, K).unsqueeze(-1)  # (M, K*B, 1)
    states, factors = [], []
    for m in range(M):
        dtm = dt[min(m, dt.shape[0] - 1)]
        f = fstep(h, u[:, m])
        s = noise_std(scheme, h, u[:, m], f, dtm)
        h_next = euler.step(h, f, dtm, u[:, m], None)  # eq (6), the engine's step
        if live is not None:
            s = s * (live[m] if s.dim() == 2 else live[m].unsqueeze(-1))
            h_next = torch.where(live[m].bool(), h_next, h)
        factors.append(s)
        h = h_next
        states.append(h)
    z = model.decoder(drift.readout(h))  # (K*B, K), all copies equal
    onehot = torch.eye(K, dtype=z.dtype, device=z.device).repeat_interleave(B, dim=0)
    grads = torch.autograd.grad(z, states, grad_outputs=onehot, create_graph=True)
    logits = z[:B]
    p = torch.softmax(logits, dim=-1).T.unsqueeze(-1)  # (K, B, 1)
    penalty = torch.zeros(B, dtype=x.dtype, device=x.device)
    for g, s in zip(grads, factors):
        if s.dim() == 2:  # diagonal: columns of V Phi diag(s)
            a = (g * s).reshape(K, B, -1)
        else:  # general: V Phi S, (K, B, r)
            a = torch.einsum("bn,bnr->br", g, s).reshape(K, B, -1)
        mean = (p * a).sum(0)
        penalty = penalty + ((p * a * a).sum(0) - mean * mean).sum(-1)
    return ExplicitObjective(logits, F.cross_entropy(logits, y), 0.5 * penalty)
