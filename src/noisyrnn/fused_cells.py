"""The cell engine: one fused, hand-differentiated recurrence for every drift form, with the
noise drawn inside the C++ step loop.

A drift declares its closed form (``Drift.form``) and hands over its operands
(``Drift.cell_operands()``); a noise scheme declares how its coefficients are drawn
(``NoiseScheme.in_loop(generator)``, a :class:`LoopNoise`). Every step is
``h' = h + c (.) f(h, x_m) + n`` (on the velocity only, for coRNN) with one GEMM
``p = h @ weight`` and one vectorised pass over the row, in C++ (:mod:`noisyrnn.cpu_kernels`,
namespace ``cells``):

======== ================================================ ============== ==========
form     f (eq 3 and the baselines of models/baselines)   weight (H, P)  state H
======== ================================================ ============== ==========
lipschitz alpha A h + tanh(W h + u)                        [alpha A^T|W^T] N
tanh     tanh(W h + u) (antisymmetric RNN)                W^T            N
modrelu  modReLU(Q h + u, b) - h (expRNN, dt = 1)         Q^T            N
cornn    (z + dt F, F), F = tanh(W y + Wz z + u) - g y - e z  [W|Wz]^T   2N
======== ================================================ ============== ==========

The coefficients (c, n) of row (m, b) are computed from the Philox keys the scheme drew from
the caller's generator: the same numbers :func:`noisyrnn.philox.rand` / ``randn`` write into
the (M, B, N) tensors the generic loop draws (element ``(m B + b) N + k``), so this path and
the reference loop of :mod:`noisyrnn.integrator` see the same noise; the backward pass
regenerates them instead of storing (M, B, N) noise tensors. The backward is written by hand
(tested against autograd through the reference loop): per step one elementwise pass and one
GEMM for the state gradient, the weight gradient one GEMM over all steps, the step-size
gradient (a learned per-unit step) and modReLU's bias gradient accumulated per row.

Applies on the CPU in float32 with the C++ extension, one model (S = 1), step sizes that are a
scalar or per unit (coRNN: a fixed scalar); elsewhere :mod:`noisyrnn.fused` (eq 3 form) or the
generic loop runs.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

FORMS = {"lipschitz": 0, "tanh": 1, "modrelu": 2, "cornn": 3}


@dataclass(frozen=True)
class LoopNoise:
    """A scheme's coefficients as the C++ loop draws them: ``kind`` 0 deterministic (c = dt),
    1 the research scheme (c = dt (mscale U + mshift), n = add Z), 2 eq (4)-(5)
    (c = dt + sqrt(dt) s2 xi, n = sqrt(dt) s1 xi); ``key_u``/``key_n``: the Philox keys of the
    uniform and normal streams."""

    kind: int
    mscale: float = 0.0
    mshift: float = 1.0
    add: float = 0.0
    s1: float = 0.0
    s2: float = 0.0
    key_u: int = 0
    key_n: int = 0


def _ops():
    from .cpu_kernels import kernels

    return kernels()


def cells_apply(drift, scheme, h0: torch.Tensor, u: torch.Tensor, deltas: torch.Tensor) -> bool:
    """Whether the cell engine runs this recurrence: a declared form with its operands, a scheme
    that draws in the loop, CPU float32 with the extension, per-unit or scalar steps, inputs
    with one drive per noise unit."""
    form = getattr(drift, "form", None)
    if form not in FORMS or not hasattr(drift, "cell_operands"):
        return False
    if not (h0.device.type == "cpu" and h0.dtype == torch.float32 and u.dtype == torch.float32):
        return False
    if not getattr(scheme, "draws_in_loop", False) or deltas.shape[0] != 1:
        return False
    units = drift.noise_size
    if u.shape[-1] != units or deltas.numel() not in (1, units):
        return False
    if form == "cornn" and (deltas.numel() != 1 or deltas.requires_grad):
        return False
    from . import fused

    return fused.USE_CPP and _ops() is not None


def cell_final_state(drift, h0, u, deltas, scheme, generator, lengths, workspace):
    """h_M of the recurrence through the cell engine (see :func:`cells_apply`)."""
    weight, bias, gamma, eps = drift.cell_operands()
    noise = scheme.in_loop(generator)
    if noise.kind == 2:
        from .noise import sqrt_step

        sqrt_step(deltas)  # a named error for non-positive (learned) steps
    dt = deltas.reshape(-1)
    empty = h0.new_empty(0)
    lengths = empty.new_empty(0, dtype=torch.int64) if lengths is None else lengths.to(torch.int64).contiguous()
    spec = (FORMS[drift.form], noise, float(gamma), float(eps), float(deltas.detach().reshape(-1)[0]), lengths)
    return _CellRecurrence.apply(u, h0, weight, dt, bias if bias is not None else empty, spec, workspace)


def _call_args(spec):
    form, noise, gamma, eps, ystep, lengths = spec
    return (lengths, form, noise.kind, noise.mscale, noise.mshift, noise.add, noise.s1, noise.s2,
            noise.key_u, noise.key_n, gamma, eps, ystep)


class _CellRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, h0, weight, dt, bias, spec, workspace):
        batch, steps, units = u.shape
        hidden, width = h0.shape[1], weight.shape[1]
        need_dt = ctx.needs_input_grad[3]
        keep_f = need_dt and spec[0] == FORMS["lipschitz"]
        empty = h0.new_empty(0)
        states = workspace.take((steps + 1, batch, hidden), h0)
        acts = workspace.take((steps, batch, units), h0)
        drifts = workspace.take((steps, batch, units), h0) if keep_f else empty
        states[0] = h0
        _ops().cells_forward(states, acts, drifts, u.contiguous(), weight.contiguous(), h0.new_empty((batch, width)),
                             bias.contiguous(), dt.contiguous(), *_call_args(spec))
        ctx.save_for_backward(weight, dt, bias)
        ctx.buffers = (states, acts, drifts)
        ctx.spec, ctx.workspace = spec, workspace
        weakref.finalize(ctx, workspace.give, states, acts, drifts if keep_f else None)
        return states[steps].clone()

    @staticmethod
    def backward(ctx, grad_h):
        weight, dt, bias = ctx.saved_tensors
        states, acts, drifts = ctx.buffers
        steps, batch, units = acts.shape
        hidden, width = states.shape[2], weight.shape[1]
        need_dt = ctx.needs_input_grad[3]
        empty = grad_h.new_empty(0)
        dp_all = ctx.workspace.take((steps, batch, width), grad_h)  # returned below (d_u view)
        g_all = grad_h.new_empty((2, batch, hidden))  # dL/dh_{m+1} and dL/dh_m, rotating
        g_all[steps % 2] = grad_h
        d_dt_rows = grad_h.new_zeros((batch, units)) if need_dt else empty
        d_bias_rows = grad_h.new_zeros((batch, units)) if ctx.spec[0] == FORMS["modrelu"] else empty
        _ops().cells_backward(g_all, dp_all, states, acts, drifts, weight.T.contiguous(), bias.contiguous(),
                              d_dt_rows, d_bias_rows, dt.contiguous(), *_call_args(ctx.spec))
        d_weight = torch.mm(states[:-1].reshape(-1, hidden).T, dp_all.reshape(-1, width))
        d_u = dp_all[..., width - units:].transpose(0, 1) if ctx.needs_input_grad[0] else None
        if d_u is None:
            ctx.workspace.give(dp_all)
        d_dt = None
        if need_dt:
            d_dt = d_dt_rows.sum(0)
            d_dt = d_dt.sum().reshape(dt.shape) if dt.numel() == 1 else d_dt.reshape(dt.shape)
        d_bias = d_bias_rows.sum(0) if ctx.needs_input_grad[4] else None
        return d_u, g_all[0].clone(), d_weight, d_dt, d_bias, None, None
