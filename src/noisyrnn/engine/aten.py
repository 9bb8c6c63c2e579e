"""A hand-written autograd Function for the eq (3) recurrence on any device and dtype, with
any noise scheme whose step is affine in the drift, ``h' = h + c_m * f(h, x_m) + n_m``, the
coefficients pre-drawn as tensors. On the CPU in float32 the C++ cell engine
(:mod:`noisyrnn.engine.cells`, noise drawn inside its loop) runs instead wherever it applies;
this path serves the GPU, float64, non-uniform partitions (per-step sizes) and the
ensembles' fallback.

Every scheme of :mod:`noisyrnn.noise` with the drift of eq (3) has that form:

* Deterministic (eq 6): ``c_m = delta_m``, ``n_m = 0``;
* ResearchCodeNoise: ``c_m = delta * m_m`` (uniform factor), ``n_m = add * xi_m``;
* EulerMaruyama with eq (4): ``c_m = delta_m + sqrt(delta_m) eps sigma2 xi_m``,
  ``n_m = sqrt(delta_m) eps sigma1 xi_m``.

Why hand-written: autograd through a Python loop records ~10 nodes per step, allocates
every intermediate, and computes the weight gradient as M small GEMMs. Here the forward
does one GEMM per step (``h @ [alpha A^T | W^T]``) and writes every saved intermediate in
place into preallocated buffers; the backward does one GEMM per step for the state
gradient (written straight into the buffer that keeps it), uses the fused
``tanh_backward`` kernel, and computes the weight gradient as a single large GEMM over all
steps. ``torch.compile`` of the unrolled loop was measured to take ~900 s to compile at
T=784, so it is not used.

Shapes carry a leading model axis S (S independent models trained at once, see
:mod:`noisyrnn.ensemble`): u (S, B, M, N) input drive (batch-first, as an encoder
produces it), h0 (S, B, N), weight (S, N, 2N), c 4-D broadcastable to (M, S, B, N),
n (M, S, B, N) or None. Saved buffers are model-major, (S, M, B, N), so the weight
gradient of each model is one GEMM over 2-D views without copies; with S = 1 every
per-step operand is a 2-D matrix and the GEMMs are plain ``mm`` calls.
"""

from __future__ import annotations

import weakref

import torch

from .workspace import Workspace

_tanh_backward = torch.ops.aten.tanh_backward


def _gemm(a, b, out):
    if a.dim() == 2:
        return torch.mm(a, b, out=out)
    if a.is_cuda:
        return torch.bmm(a, b, out=out)
    for s in range(a.shape[0]):  # on CPU one multi-threaded mm per model beats bmm (measured)
        torch.mm(a[s], b[s], out=out[s])
    return out


def _gemm_add(acc, a, b, out):
    if a.dim() == 2:
        return torch.addmm(acc, a, b, out=out)
    if a.is_cuda:
        return torch.baddbmm(acc, a, b, out=out)
    for s in range(a.shape[0]):
        torch.addmm(acc[s], a[s], b[s], out=out[s])
    return out


def _forward_loop(u, weight, c, n, states, tanhs, drifts, p, z) -> None:
    """The forward recurrence as a Python loop of ATen calls (any S, device and dtype)."""
    S, steps = u.shape[0], u.shape[2]
    hidden = states.shape[-1]
    single, per_step, need_c = S == 1, c.shape[0] == steps, drifts is not None
    at = (lambda t, m: t[0, m]) if single else (lambda t, m: t[:, m])  # noqa: E731
    w = weight[0] if single else weight
    pp, zz = (p[0], z[0]) if single else (p, z)
    for m in range(steps):
        h = at(states, m)
        _gemm(h, w, out=pp)  # [alpha A h | W h]
        torch.add(pp[..., hidden:], u[0, :, m] if single else u[:, :, m], out=zz)
        t = torch.tanh(zz, out=at(tanhs, m))
        f = torch.add(pp[..., :hidden], t, out=at(drifts, m) if need_c else pp[..., :hidden])
        c_m = c[m] if per_step else c[0]
        if n is None:
            base = h
        else:
            base = torch.add(h, n[m, 0] if single else n[m], out=zz)
        torch.addcmul(base, c_m[0] if single else c_m, f, out=at(states, m + 1))


def _backward_loop(g_all, dp_all, tanhs, drifts, wt, c, d_c_all, rows, need_c) -> None:
    """The backward recurrence as a Python loop of ATen calls: fills dp_all and g_all (and
    d_c_all when ``need_c``) from g_all's row for h_M."""
    S, steps, _, hidden = tanhs.shape
    single, per_step = S == 1, c.shape[0] == steps
    at = (lambda t, m: t[0, m]) if single else (lambda t, m: t[:, m])  # noqa: E731
    for m in range(steps - 1, -1, -1):
        g = at(g_all, (m + 1) % rows)
        dp = at(dp_all, m)
        c_m = c[m] if per_step else c[0]
        df = torch.mul(c_m[0] if single else c_m, g, out=dp[..., :hidden])
        _tanh_backward(df, at(tanhs, m), grad_input=dp[..., hidden:])
        if need_c:
            f = at(drifts, m)
            if per_step:
                torch.mul(g, f, out=d_c_all[m, 0] if single else d_c_all[m])
            else:
                (d_c_all[0] if single else d_c_all).addcmul_(g, f)
        _gemm_add(g, dp, wt, out=at(g_all, m % rows))


class _LipschitzRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, h0, weight, c, n, workspace):
        S, B, steps, hidden = u.shape
        need_c = ctx.needs_input_grad[3]
        shape = (S, steps, B, hidden)
        states = workspace.take((S, steps + 1, B, hidden), h0)
        tanhs = workspace.take(shape, h0)
        drifts = workspace.take(shape, h0) if need_c else None
        p = h0.new_empty((S, B, 2 * hidden))
        states[:, 0] = h0
        _forward_loop(u, weight, c, n, states, tanhs, drifts, p, h0.new_empty((S, B, hidden)))
        ctx.save_for_backward(weight, c)
        ctx.buffers = (states, tanhs, drifts)
        ctx.workspace = workspace
        weakref.finalize(ctx, workspace.give, states, tanhs, drifts)
        return states[:, steps].clone()

    @staticmethod
    def backward(ctx, grad_h):
        weight, c = ctx.saved_tensors
        states, tanhs, drifts = ctx.buffers
        S, steps, B, hidden = tanhs.shape
        single = S == 1
        per_step = c.shape[0] == steps
        need_c, need_n = ctx.needs_input_grad[3], ctx.needs_input_grad[4]
        dp_all = ctx.workspace.take((S, steps, B, 2 * hidden), grad_h)  # returned below (d_u view)
        # g_all[:, m] = dL/dh_m (kept whole only for the grad of n; else two rotating rows)
        rows = steps + 1 if need_n else 2
        g_all = grad_h.new_empty((S, rows, B, hidden))
        g_all[:, steps % rows] = grad_h
        d_c_all = None
        if need_c:  # grad of c: per step if c varies per step (stored model-major), else summed on the fly
            if per_step:
                d_c_all = grad_h.new_empty((S, steps, B, hidden)).transpose(0, 1)  # (M, S, B, N) view
            else:
                d_c_all = grad_h.new_zeros((S, B, hidden))
        wt = weight.transpose(-1, -2).contiguous()  # bmm would copy a transposed operand every step
        _backward_loop(g_all, dp_all, tanhs, drifts, wt[0] if single else wt, c, d_c_all, rows, need_c)
        # weight gradient: per model one GEMM over all steps, sum_m h_m^T dp_m (2-D views, no copies)
        d_weight = grad_h.new_empty(weight.shape)
        for s in range(S):
            torch.mm(states[s, :-1].reshape(-1, hidden).T, dp_all[s].reshape(-1, 2 * hidden), out=d_weight[s])
        d_u = dp_all[..., hidden:].transpose(1, 2) if ctx.needs_input_grad[0] else None  # (S, B, M, N) view
        d_c = _reduce_to(d_c_all, c.shape) if need_c else None
        d_n = g_all[:, 1:].transpose(0, 1) if need_n else None  # (M, S, B, N)
        d_h0 = g_all[:, 0].clone()
        if d_u is None:
            ctx.workspace.give(dp_all)
        else:  # back to the pool once autograd is done with the input gradient (a view of it)
            weakref.finalize(d_u, ctx.workspace.give, dp_all)
        return d_u, d_h0, d_weight, d_c, d_n, None


def _reduce_to(grad: torch.Tensor, shape) -> torch.Tensor:
    """Sum ``grad`` over the axes that were broadcast to reach its shape from ``shape``."""
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    while grad.dim() < len(shape):
        grad = grad.unsqueeze(0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis, keepdim=True)
    return grad


def lipschitz_recurrence(u, h0, weight, c, n=None, workspace: Workspace | None = None):
    """h_M, shape (S, B, N), of ``h' = h + c_m * (alpha A h + tanh(W h + u_m)) + n_m`` (see the module docstring).

    ``c`` must be 4-D, broadcastable to (M, S, B, N) (use shape (1, 1, 1, 1) for a scalar step).
    ``workspace``: the caller's buffer pool (a model passes its own); None: fresh buffers.
    """
    if c.dim() != 4:
        raise ValueError(f"c must be 4-D (broadcastable to (M, S, B, N)), got shape {tuple(c.shape)}")
    return _LipschitzRecurrence.apply(u, h0, weight, c, n, workspace if workspace is not None else Workspace(0))
