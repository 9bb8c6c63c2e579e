"""A hand-written autograd Function for the hot path: the eq (3) recurrence with any noise
scheme whose step is affine in the drift, ``h' = h + c_m * f(h, x_m) + n_m``.

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
:mod:`noisyrnn.ensemble`): u (M, S, B, N) time-major input drive, h0 (S, B, N),
weight (S, N, 2N), c 4-D broadcastable to (M, S, B, N), n (M, S, B, N) or None.
With S = 1 the model axis is dropped inside, so the GEMMs are plain ``mm`` calls.
"""

from __future__ import annotations

import weakref

import torch

_tanh_backward = torch.ops.aten.tanh_backward


class _Workspace:
    """Reuses the large per-sequence buffers between calls.

    Freshly allocated buffers of tens of MB are page-faulted in by the OS on every
    training step (measured: ~170 ms of a ~380 ms pixel-MNIST step), while the eager
    loop's small per-step tensors are recycled by the allocator. Buffers are handed back
    when autograd frees the graph that saved them (so ``retain_graph`` stays correct); at
    most ``keep`` per shape are kept.
    """

    def __init__(self, keep: int = 4) -> None:
        self.free: dict = {}
        self.keep = keep

    def take(self, shape, like: torch.Tensor) -> torch.Tensor:
        key = (tuple(shape), like.dtype, like.device)
        stack = self.free.get(key)
        return stack.pop() if stack else like.new_empty(shape)

    def give(self, *tensors) -> None:
        for t in tensors:
            if t is None:
                continue
            stack = self.free.setdefault((tuple(t.shape), t.dtype, t.device), [])
            if len(stack) < self.keep:
                stack.append(t)

    def clear(self) -> None:
        self.free.clear()


WORKSPACE = _Workspace()


def _gemm(a, b, out=None):
    return torch.mm(a, b, out=out) if a.dim() == 2 else torch.bmm(a, b, out=out)


def _gemm_add(acc, a, b, out=None):
    return torch.addmm(acc, a, b, out=out) if a.dim() == 2 else torch.baddbmm(acc, a, b, out=out)


class _LipschitzRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, h0, weight, c, n):
        single = weight.shape[0] == 1
        if single:  # drop the model axis: mm instead of bmm
            u, h0, weight, c = u[:, 0], h0[0], weight[0], c[:, 0]
            n = None if n is None else n[:, 0]
        steps, hidden = u.shape[0], h0.shape[-1]
        per_step = c.shape[0] == steps
        need_c = ctx.needs_input_grad[3]
        states = WORKSPACE.take((steps + 1,) + h0.shape, h0)
        tanhs = WORKSPACE.take((steps,) + h0.shape, h0)
        drifts = WORKSPACE.take((steps,) + h0.shape, h0) if need_c else None
        p = h0.new_empty(h0.shape[:-1] + (2 * hidden,))
        z = h0.new_empty(h0.shape)
        states[0] = h0
        for m in range(steps):
            h = states[m]
            _gemm(h, weight, out=p)  # [alpha A h | W h]
            torch.add(p[..., hidden:], u[m], out=z)
            t = torch.tanh(z, out=tanhs[m])
            f = torch.add(p[..., :hidden], t, out=drifts[m] if need_c else p[..., :hidden])
            base = h if n is None else torch.add(h, n[m], out=z)
            torch.addcmul(base, c[m] if per_step else c[0], f, out=states[m + 1])
        ctx.save_for_backward(weight, c)
        ctx.buffers = (states, tanhs, drifts)
        weakref.finalize(ctx, WORKSPACE.give, states, tanhs, drifts)
        ctx.single = single
        out = states[steps].clone()
        return out.unsqueeze(0) if single else out

    @staticmethod
    def backward(ctx, grad_h):
        weight, c = ctx.saved_tensors
        states, tanhs, drifts = ctx.buffers
        single = ctx.single
        if single:
            grad_h = grad_h[0]
        steps, hidden = tanhs.shape[0], tanhs.shape[-1]
        per_step = c.shape[0] == steps
        need_c, need_n = ctx.needs_input_grad[3], ctx.needs_input_grad[4]
        dp_all = WORKSPACE.take(tanhs.shape[:-1] + (2 * hidden,), grad_h)  # returned below
        # g_all[m] = dL/dh_m (needed whole only for the grad of n; else two rotating rows)
        g_all = grad_h.new_empty((steps + 1,) + tanhs.shape[1:]) if need_n else grad_h.new_empty((2,) + grad_h.shape)
        rows = steps + 1 if need_n else 2
        g_all[steps % rows] = grad_h
        # grad of c: kept per step only if c varies per step, else summed on the fly
        d_c_all = None
        if need_c:
            d_c_all = grad_h.new_empty(tanhs.shape) if per_step else grad_h.new_zeros(tanhs.shape[1:])
        wt = weight.transpose(-1, -2)
        for m in range(steps - 1, -1, -1):
            g = g_all[(m + 1) % rows]
            dp = dp_all[m]
            df = torch.mul(c[m] if per_step else c[0], g, out=dp[..., :hidden])
            _tanh_backward(df, tanhs[m], grad_input=dp[..., hidden:])
            if need_c:
                if per_step:
                    torch.mul(g, drifts[m], out=d_c_all[m])
                else:
                    d_c_all.addcmul_(g, drifts[m])
            _gemm_add(g, dp, wt, out=g_all[m % rows])
        # weight gradient: one GEMM over all steps, sum_m h_m^T dp_m (per model)
        if single:
            d_weight = torch.mm(states[:-1].reshape(-1, hidden).T, dp_all.reshape(-1, 2 * hidden))
        else:
            S = weight.shape[0]
            h_prev = states[:-1].permute(1, 3, 0, 2).reshape(S, hidden, -1)  # (S, N, M*B)
            d_weight = torch.bmm(h_prev, dp_all.permute(1, 0, 2, 3).reshape(S, -1, 2 * hidden))
        d_u = dp_all[..., hidden:].clone() if ctx.needs_input_grad[0] else None
        d_c = _reduce_to(d_c_all, c.shape) if need_c else None
        d_n = g_all[1:] if need_n else None
        d_h0 = g_all[0].clone()
        WORKSPACE.give(dp_all)
        if single:
            d_u = None if d_u is None else d_u.unsqueeze(1)
            d_c = None if d_c is None else d_c.unsqueeze(1)
            d_n = None if d_n is None else d_n.unsqueeze(1)
            d_h0, d_weight = d_h0.unsqueeze(0), d_weight.unsqueeze(0)
        return d_u, d_h0, d_weight, d_c, d_n


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


def lipschitz_recurrence(u, h0, weight, c, n=None):
    """h_M of ``h' = h + c_m * (alpha A h + tanh(W h + u_m)) + n_m`` (see the module docstring).

    ``c`` must be 4-D, broadcastable to (M, S, B, N) (use shape (1, 1, 1, 1) for a scalar step).
    """
    if c.dim() != 4:
        raise ValueError(f"c must be 4-D (broadcastable to (M, S, B, N)), got shape {tuple(c.shape)}")
    return _LipschitzRecurrence.apply(u, h0, weight, c, n)
