"""A hand-written autograd Function for the hot path: the eq (3) recurrence with any noise
scheme whose step is affine in the drift, ``h' = h + c_m * f(h, x_m) + n_m``.

Every scheme of :mod:`noisyrnn.noise` with the drift of eq (3) has that form:

* Deterministic (eq 6): ``c_m = delta_m``, ``n_m = 0``;
* ResearchCodeNoise: ``c_m = delta * m_m`` (uniform factor), ``n_m = add * xi_m``;
* EulerMaruyama with eq (4): ``c_m = delta_m + sqrt(delta_m) eps sigma2 xi_m``,
  ``n_m = sqrt(delta_m) eps sigma1 xi_m``.

Why hand-written: autograd through a Python loop records ~10 nodes per step and computes
the weight gradient as M small GEMMs. Here the forward does one GEMM per step
(``[h | 1] @ [alpha A^T | W^T]`` with the input term folded into ``addmm``), the backward
one GEMM per step for the state gradient, and the weight gradient is a single large GEMM
over all steps at the end. ``torch.compile`` of the unrolled loop was measured to take
~900 s to compile at T=784, so it is not used.

Shapes carry a leading model axis S (S independent models trained at once, see
:mod:`noisyrnn.ensemble`): u (M, S, B, N) time-major input drive, h0 (S, B, N),
weight (S, N, 2N), c broadcastable to (M, S, B, N), n (M, S, B, N) or None.
"""

from __future__ import annotations

import torch


class _LipschitzRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, h0, weight, c, n):
        steps, hidden = u.shape[0], h0.shape[-1]
        states = h0.new_empty((steps + 1,) + h0.shape)
        tanhs = h0.new_empty((steps,) + h0.shape)
        drifts = h0.new_empty((steps,) + h0.shape) if ctx.needs_input_grad[3] else None
        states[0] = h0
        h = h0
        c_per_step = c.dim() == 4 and c.shape[0] == steps
        for m in range(steps):
            p = torch.bmm(h, weight)  # (S, B, 2N): [alpha A h | W h]
            t = torch.tanh(p[..., hidden:] + u[m])
            f = p[..., :hidden] + t
            c_m = c[m] if c_per_step else c[0] if c.dim() == 4 else c
            h = torch.addcmul(h if n is None else h + n[m], c_m, f)
            states[m + 1] = h
            tanhs[m] = t
            if drifts is not None:
                drifts[m] = f
        ctx.save_for_backward(states, tanhs, weight, c, drifts)
        ctx.has_n = n is not None
        return h

    @staticmethod
    def backward(ctx, grad_h):
        states, tanhs, weight, c, drifts = ctx.saved_tensors
        steps, hidden = tanhs.shape[0], tanhs.shape[-1]
        c_per_step = c.dim() == 4 and c.shape[0] == steps
        dp_all = grad_h.new_empty(tanhs.shape[:-1] + (2 * hidden,))
        need_c = ctx.needs_input_grad[3]
        need_n = ctx.needs_input_grad[4]
        grads_h = grad_h.new_empty(tanhs.shape) if (need_c or need_n) else None
        wt = weight.transpose(1, 2)
        g = grad_h
        for m in range(steps - 1, -1, -1):
            if grads_h is not None:
                grads_h[m] = g
            c_m = c[m] if c_per_step else c[0] if c.dim() == 4 else c
            df = c_m * g
            dp = dp_all[m]
            dp[..., :hidden] = df
            t = tanhs[m]
            torch.mul(df, 1 - t * t, out=dp[..., hidden:])
            g = torch.baddbmm(g, dp, wt)
        # weight gradient: one GEMM over all steps, sum_m h_m^T dp_m per model
        S = weight.shape[0]
        h_prev = states[:-1].permute(1, 3, 0, 2).reshape(S, hidden, -1)  # (S, N, M*B)
        dp_flat = dp_all.permute(1, 0, 2, 3).reshape(S, -1, 2 * hidden)  # (S, M*B, 2N)
        d_weight = torch.bmm(h_prev, dp_flat)
        d_u = dp_all[..., hidden:] if ctx.needs_input_grad[0] else None
        d_c = None
        if need_c:
            d_c = grads_h * drifts
            d_c = _reduce_to(d_c, c.shape)
        d_n = grads_h if need_n else None
        return d_u, g, d_weight, d_c, d_n


def _reduce_to(grad: torch.Tensor, shape) -> torch.Tensor:
    """Sum ``grad`` over the axes that were broadcast to reach its shape from ``shape``."""
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis, keepdim=True)
    return grad


def lipschitz_recurrence(u, h0, weight, c, n=None):
    """h_M of ``h' = h + c_m * (alpha A h + tanh(W h + u_m)) + n_m`` (see the module docstring).

    ``c`` must be 4-D, broadcastable to (M, S, B, N) (use shape (1, 1, 1, 1) for a scalar step).
    """
    if c.dim() != 4:
        raise ValueError(f"c must be 4-D (broadcastable to (M, S, B, N)), got shape {tuple(c.shape)}")
    return _LipschitzRecurrence.apply(u, h0, weight, c, n)
