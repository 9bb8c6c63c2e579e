"""The cell engine: one fused, hand-differentiated recurrence for every drift form, with the
noise drawn inside the C++ step loop.

A drift declares its closed form (``Drift.form``) and hands over its operands
(``Drift.cell_operands()``); a noise scheme declares how its coefficients are drawn
(``NoiseScheme.in_loop(generator)``, a :class:`LoopNoise`). Every step is
``h' = h + c (.) f(h, x_m) + n`` (on the velocity only, for coRNN) with one GEMM
``p = h @ weight`` and one vectorised pass over the row, in C++ (:mod:`noisyrnn.engine.build`,
namespace ``cells``):

======== ================================================ ============== ==========
form     f (eq 3 and the baselines of models/baselines)   weight (H, P)  state H
======== ================================================ ============== ==========
lipschitz alpha A h + tanh(W h + u)                        [alpha A^T|W^T] N
tanh     tanh(W h + u) (antisymmetric RNN)                W^T            N
modrelu  modReLU(Q h + u, b) - h (expRNN, dt = 1)         Q^T            N
cornn    (z + dt F, F), F = tanh(W y + Wz z + u) - g y - e z  [W|Wz]^T   2N
gated    sigmoid(W h + u_z) tanh(W h + u_h) (gated AntisymmetricRNN)  [W^T|W^T]  N
======== ================================================ ============== ==========

The coefficients (c, n) of row (m, b) are computed from the Philox keys the scheme drew from
the caller's generator: the same numbers :func:`noisyrnn.philox.rand` / ``randn`` write into
the (M, B, N) tensors the generic loop draws (element ``(m B + b) N + k``), so this path and
the reference loop of :mod:`noisyrnn.engine.integrate` see the same noise; the backward pass
regenerates them instead of storing (M, B, N) noise tensors. The backward is written by hand
(tested against autograd through the reference loop): per step one elementwise pass and one
GEMM for the state gradient, the weight gradient one GEMM over all steps, the step-size
gradient (a learned per-unit step) and modReLU's bias gradient accumulated per row.

Applies on the CPU in float32 with the C++ extension, one model (S = 1), step sizes that are a
scalar or per unit (coRNN: a fixed scalar); elsewhere :mod:`noisyrnn.engine.aten` (eq 3 form) or the
generic loop runs.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property

import torch

from ..dynamics import LinearInputs
from ..noise import LoopNoise, sqrt_step
from .forms import FORMS, MEMBER_INTS, MEMBER_REALS, NOISE_KINDS  # declared once, in csrc/forms.h

__all__ = ["FORMS", "CellSpec", "LoopNoise", "cells_apply", "cell_final_state", "cell_members_final_state",
           "cell_members_states", "cell_recurrence", "cell_states", "member_inputs"]



def _ops():
    from .build import kernels

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
    if u.shape[-1] != (2 if form == "gated" else 1) * units or deltas.numel() not in (1, units):
        return False
    if form == "cornn" and (deltas.numel() != 1 or deltas.requires_grad):
        return False
    return _ops() is not None


@dataclass(frozen=True)
class CellSpec:
    """What the C++ loop needs besides tensors, one entry per member: the form, each member's
    :class:`LoopNoise`, its form constants (coRNN's gamma, epsilon and step) and lengths
    (int64 (B,), or empty for full-length batches)."""

    form: int
    noise: tuple
    gamma: tuple
    eps: tuple
    ystep: tuple
    lengths: tuple

    @cached_property
    def scalars(self) -> dict:
        """The keyword arguments both C++ ops take besides the tensors of the loop: the
        lengths, the form and each member's scalars packed in the columns ``csrc/forms.h``
        declares (``member_ints`` int64 (S, 3), ``member_reals`` float64 (S, 8)); packed once,
        for the forward and the backward."""
        ints = torch.zeros((len(self.noise), len(MEMBER_INTS)), dtype=torch.int64)
        reals = torch.zeros((len(self.noise), len(MEMBER_REALS)), dtype=torch.float64)
        for s, n in enumerate(self.noise):
            for name, value in (("kind", NOISE_KINDS[n.kind]), ("key_u", n.key_u), ("key_n", n.key_n)):
                ints[s, MEMBER_INTS[name]] = value
            for name, value in (("mscale", n.mscale), ("mshift", n.mshift), ("add", n.add), ("s1", n.s1),
                                ("s2", n.s2), ("gamma", self.gamma[s]), ("eps", self.eps[s]),
                                ("ystep", self.ystep[s])):
                reals[s, MEMBER_REALS[name]] = value
        return {"lengths": list(self.lengths), "form": self.form, "member_ints": ints, "member_reals": reals}


def _member_axis(u):
    """u (B, M, d_u) or its LinearInputs with a leading member axis of one."""
    if isinstance(u, LinearInputs):
        return LinearInputs(u.x.unsqueeze(0), u.weight.unsqueeze(0), None if u.bias is None else u.bias.unsqueeze(0))
    return u.unsqueeze(0)


def member_inputs(u, s: int):
    """Member ``s`` of inputs with a member axis (a tensor or LinearInputs)."""
    return u.member(s) if isinstance(u, LinearInputs) else u[s]


def cell_final_state(drift, h0, u, deltas, scheme, generator, lengths, workspace):
    """h_M of one model's recurrence through the cell engine (see :func:`cells_apply`)."""
    return cell_members_final_state([drift], h0.unsqueeze(0), _member_axis(u), [deltas], [scheme], [generator],
                                    [lengths], workspace)[0]


def cell_states(drift, h0, u, deltas, scheme, generator, lengths, workspace):
    """Every state h_1..h_M (B, M, H) of one model's recurrence through the cell engine, the
    backward taking a gradient at every step (see :func:`cell_members_states`)."""
    return cell_members_states([drift], h0.unsqueeze(0), _member_axis(u), [deltas], [scheme], [generator],
                               [lengths], workspace)[0].transpose(0, 1)


def cell_members_states(drifts, h0, u, deltas, schemes, generators, lengths, workspace):
    """h_1..h_M (S, M, B, H) of S members of one form (arguments as
    :func:`cell_members_final_state`); past a sequence's length its state stays frozen."""
    return _members(drifts, h0, u, deltas, schemes, generators, lengths, workspace, outputs=True)


def cell_members_final_state(drifts, h0, u, deltas, schemes, generators, lengths, workspace):
    """h_M (S, B, H) of S members of one form through the cell engine, in one C++ call: h0
    (S, B, H), u (S, B, M, d_u) or :class:`~noisyrnn.dynamics.LinearInputs` with x (S, B, M, d_x),
    U (S, d_u, d_x), b (S, d_u); per member its drift, step sizes (1, 1 or N), scheme,
    generator and lengths (B,) or None. Each scheme draws its keys from its generator here."""
    return _members(drifts, h0, u, deltas, schemes, generators, lengths, workspace, outputs=False)


def _members(drifts, h0, u, deltas, schemes, generators, lengths, workspace, outputs):
    operands = [d.cell_operands() for d in drifts]
    noise = tuple(sc.in_loop(g) for sc, g in zip(schemes, generators))
    for n, dt in zip(noise, deltas):
        if n.kind == "eq4":
            sqrt_step(dt)  # a named error for non-positive (learned) steps
    full = torch.empty(0, dtype=torch.int64)
    spec = CellSpec(FORMS[drifts[0].form], noise, tuple(float(o[2]) for o in operands),
                    tuple(float(o[3]) for o in operands), tuple(float(dt.detach().reshape(-1)[0]) for dt in deltas),
                    tuple(full if L is None else L.to(torch.int64).contiguous() for L in lengths))
    weight = torch.stack([o[0] for o in operands])
    bias = torch.stack([o[1] if o[1] is not None else h0.new_empty(0) for o in operands])
    dt = torch.stack([d.reshape(-1) for d in deltas])
    return cell_recurrence(u, h0, weight, dt, bias, spec, workspace, outputs)


def cell_recurrence(u, h0, weight, dt, bias, spec: CellSpec, workspace, outputs: bool = False):
    """h_M (S, B, H) of S members at once, or with ``outputs`` every state h_1..h_M (S, M, B, H)
    (a gradient at every step flows back through the same C++ loop; past a sequence's length
    its state stays frozen, so ``[:, -1]`` is h_M): u (S, B, M, d_u) or LinearInputs (x (S, B,
    M, d_x), U (S, d_u, d_x), b (S, d_u) or None; projected inside the loop), h0 (S, B, H),
    weight (S, H, P), dt (S, 1 or N), bias (S, N) (modReLU) or (S, 0); the members run in
    parallel in C++."""
    if isinstance(u, LinearInputs):
        in_b = u.bias if u.bias is not None else u.x.new_zeros(u.weight.shape[:2])
        return _CellRecurrence.apply(u.x, h0, weight, dt, bias, u.weight, in_b, spec, workspace, outputs)
    return _CellRecurrence.apply(u, h0, weight, dt, bias, None, None, spec, workspace, outputs)


class _CellRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, h0, weight, dt, bias, in_w, in_b, spec, workspace, outputs):
        S, batch, steps = u.shape[:3]
        hidden, width = h0.shape[2], weight.shape[2]
        proj = in_w is not None  # u holds the raw inputs x, projected by in_w, in_b inside the loop
        in_wt = in_w.transpose(1, 2).contiguous() if proj else None  # (S, d_x, d_u)
        need_dt = ctx.needs_input_grad[3]
        keep = any(ctx.needs_input_grad)  # else inference: two rotating state rows, no saved steps
        keep_f = keep and ((need_dt and spec.form == FORMS["lipschitz"]) or spec.form == FORMS["gated"])
        empty = h0.new_empty(0)
        # the output sequence is a view of its own states buffer (not the pool's): no copy
        states = (h0.new_empty((S, steps + 1, batch, hidden)) if outputs
                  else workspace.take((S, steps + 1 if keep else 2, batch, hidden), h0))
        units = hidden // 2 if spec.form == FORMS["cornn"] else hidden  # one activation per unit
        acts = workspace.take((S, steps, batch, units), h0) if keep else None  # inference: none kept
        drifts = workspace.take((S, steps, batch, units), h0) if keep_f else None
        states[:, 0] = h0
        members = range(S)
        _ops().cells_forward(
            states=list(states), acts=list(acts) if keep else [empty] * S,
            drifts=[drifts[s] if keep_f else empty for s in members],
            u=[u[s].contiguous() for s in members], w=[weight[s].contiguous() for s in members],
            p=list(h0.new_empty((S, batch, width))), bias=[bias[s].contiguous() for s in members],
            in_wt=list(in_wt) if proj else [empty] * S,
            in_b=[in_b[s].contiguous() for s in members] if proj else [empty] * S,
            dt=[dt[s].contiguous() for s in members], **spec.scalars)
        out = states[:, 1:] if outputs else states[:, steps % states.shape[1]].clone()
        if not keep:
            if not outputs:
                workspace.give(states)
            return out
        # saving the output makes autograd refuse a backward after an in-place change to it
        ctx.save_for_backward(weight, dt, bias, u if proj else None, in_w, out if outputs else None)
        ctx.buffers = (states, acts, drifts)
        ctx.spec, ctx.workspace, ctx.outputs = spec, workspace, outputs
        ctx.u_width = in_w.shape[1] if proj else u.shape[-1]
        weakref.finalize(ctx, workspace.give, None if outputs else states, acts, drifts)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        weight, dt, bias, x, in_w, _ = ctx.saved_tensors
        states, acts, drifts = ctx.buffers
        S, steps, batch, units = acts.shape
        hidden, width = states.shape[3], weight.shape[2]
        need_dt = ctx.needs_input_grad[3]
        empty, members = grad_out.new_empty(0), range(S)
        dp_all = ctx.workspace.take((S, steps, batch, width), grad_out)  # returned below (d_u view)
        g_all = grad_out.new_empty((S, 2, batch, hidden))  # dL/dh_{m+1} and dL/dh_m, rotating
        if ctx.outputs:  # every step's gradient is added inside the loop
            g_all[:, steps % 2] = 0.0
            g_out = [grad_out[s].contiguous() for s in members]
        else:
            g_all[:, steps % 2] = grad_out
            g_out = [empty] * S
        d_dt_rows = grad_out.new_zeros((S, batch, units)) if need_dt else None
        modrelu = ctx.spec.form == FORMS["modrelu"]
        d_bias_rows = grad_out.new_zeros((S, batch, units)) if modrelu else None
        wt = weight.transpose(1, 2).contiguous()
        fold = in_w is not None and (ctx.needs_input_grad[5] or ctx.needs_input_grad[6])  # dU, db in the loop
        d_inw_rows = grad_out.new_zeros((S, batch, x.shape[-1], ctx.u_width)) if fold else None
        d_inb_rows = grad_out.new_zeros((S, batch, ctx.u_width)) if fold else None
        _ops().cells_backward(
            g_all=list(g_all), dp_all=list(dp_all), g_out=g_out, states=list(states), acts=list(acts),
            drifts=[drifts[s] if drifts is not None else empty for s in members], wt=list(wt),
            bias=[bias[s].contiguous() for s in members],
            d_dt=list(d_dt_rows) if need_dt else [empty] * S,
            d_bias=list(d_bias_rows) if modrelu else [empty] * S,
            x_in=[x[s].contiguous() for s in members] if fold else [empty] * S,
            d_inw=list(d_inw_rows) if fold else [empty] * S, d_inb=list(d_inb_rows) if fold else [empty] * S,
            dt=[dt[s].contiguous() for s in members], **ctx.spec.scalars)
        d_weight = grad_out.new_empty(weight.shape)  # per member one GEMM over all steps: sum_m h_m^T dp_m
        _ops().gemm_tn([states[s, :-1].reshape(-1, hidden) for s in members],
                       [dp_all[s].reshape(-1, width) for s in members], list(d_weight))
        drive = dp_all[..., width - ctx.u_width:]  # dL/du_m (S, M, B, d_u): the tail of dp
        d_u = d_in_w = d_in_b = None
        if in_w is not None:  # u = x U^T + b formed in the loop: dU, db summed there, dL/dx here
            if ctx.needs_input_grad[0]:
                d_u = torch.matmul(drive, in_w.unsqueeze(1)).transpose(1, 2)  # dL/dx (S, B, M, d_x)
            if ctx.needs_input_grad[5]:
                d_in_w = d_inw_rows.sum(1).transpose(1, 2)  # (S, d_u, d_x)
            if ctx.needs_input_grad[6]:
                d_in_b = d_inb_rows.sum(1)
            ctx.workspace.give(dp_all)
        elif ctx.needs_input_grad[0]:  # back to the pool once autograd is done with it (a view of it)
            d_u = drive.transpose(1, 2)  # (S, B, M, d_u)
            weakref.finalize(d_u, ctx.workspace.give, dp_all)
        else:
            ctx.workspace.give(dp_all)
        d_dt = None
        if need_dt:
            d_dt = d_dt_rows.sum(1)  # (S, N)
            d_dt = d_dt.sum(1, keepdim=True) if dt.shape[1] == 1 else d_dt
        d_bias = d_bias_rows.sum(1) if ctx.needs_input_grad[4] else None
        return d_u, g_all[:, 0].clone(), d_weight, d_dt, d_bias, d_in_w, d_in_b, None, None, None
