"""The one recurrence loop every model shares: Euler / Euler-Maruyama over a partition.

``integrate`` evaluates eq (5) (noise on) or eq (6) (noise off) for
m = 0, ..., M-1 with step sizes delta_m, given a drift, a noise scheme and the
encoded inputs. Step sizes may be

* a float (uniform partition),
* a 1-D tensor of length M (one delta_m per step: a non-uniform partition),
* a tensor of shape (1, d_h) (one step per hidden unit, as the research code learns), or
* a tensor of shape (M, d_h) (per step and per unit).

Unequal lengths: with ``lengths`` (one per sequence, 1 <= L_b <= M, the sequences padded
at the end to M steps) the state of sequence b is frozen after its own L_b steps,
``h_{m+1} = h_m`` for m >= L_b, so ``h_M`` is each sequence's own last state h_{L_b}
(the decoder of eq (14) reads it) and padded steps change nothing, forward or backward.
:func:`step_mask` is that rule, in this one place, for every recurrence path.
"""

from __future__ import annotations

import torch

from ..dynamics import Drift, LinearInputs
from ..errors import ConfigError, InputError
from .backend import allows, effective_backend
from .workspace import Workspace
from ..noise import Deterministic, NoiseScheme



def step_sizes(dt, steps: int, hidden: int, like: torch.Tensor) -> torch.Tensor:
    """Return step sizes as a tensor of shape (M, d_h) or (M, 1) or (1, d_h), validated."""
    if not isinstance(dt, torch.Tensor):
        dt = torch.tensor(float(dt), dtype=like.dtype, device=like.device)
    if dt.dim() == 0:
        out = dt.reshape(1, 1)
    elif dt.dim() == 1:
        if dt.shape[0] != steps:
            raise InputError(
                f"per-step sizes must have length M={steps} (one per time step), got {dt.shape[0]}; "
                "pass per-unit sizes as shape (1, d_h)"
            )
        out = dt.reshape(steps, 1)
    elif dt.dim() == 2 and dt.shape[0] in (1, steps) and dt.shape[1] in (1, hidden):
        out = dt
    else:
        raise InputError(
            f"step sizes of shape {tuple(dt.shape)} do not fit M={steps} steps and d_h={hidden} units"
        )
    if not dt.requires_grad and bool((out <= 0).any()):
        raise InputError("step sizes must be positive")
    return out.to(dtype=like.dtype)


def check_lengths(lengths, batch: int, steps: int) -> torch.Tensor | None:
    """Validate per-sequence lengths (B,) in [1, M]; None when absent."""
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise InputError(f"lengths must have shape ({batch},) (one per sequence), got {tuple(lengths.shape)}")
    if torch.is_floating_point(lengths) or lengths.dtype == torch.bool:
        raise InputError(f"lengths must be integers, got dtype {lengths.dtype}")
    if batch and (int(lengths.min()) < 1 or int(lengths.max()) > steps):
        raise InputError(
            f"lengths must lie in [1, {steps}] (the padded length), got min {int(lengths.min())}, "
            f"max {int(lengths.max())}"
        )
    return lengths


def step_mask(lengths, batch: int, steps: int, like: torch.Tensor) -> torch.Tensor | None:
    """(M, B) mask, 1 where step m is a real step of sequence b (m < L_b), 0 on padding;
    None when every sequence has all M steps (nothing to mask)."""
    lengths = check_lengths(lengths, batch, steps)
    if lengths is None or batch == 0 or int(lengths.min()) == steps:
        return None
    m = torch.arange(steps, device=like.device).unsqueeze(1)
    return (m < lengths.to(like.device).unsqueeze(0)).to(like.dtype)


def fused_applies(drift: Drift, scheme: NoiseScheme | None) -> bool:
    """Whether :mod:`noisyrnn.engine.aten` can run this recurrence: the drift declares the eq (3)
    form (``Drift.form == "lipschitz"``) and the scheme's step is affine in f
    (``NoiseScheme.affine_coefficients``; checked again on the drawn noise)."""
    return getattr(drift, "form", None) == "lipschitz" and (scheme is None or scheme.affine)


def fused_members_final_state(drifts, h0, u, deltas, schemes, generators, lengths, workspace):
    """h_M (S, B, N) of S eq (3) members as one :func:`noisyrnn.engine.aten.lipschitz_recurrence` with
    pre-drawn noise: h0 (S, B, N), u (S, B, M, N); per member its drift, step sizes (as
    :func:`step_sizes` returns them), scheme, generator and lengths. None when a scheme's
    coefficients are not affine for these draws."""
    from .aten import lipschitz_recurrence

    S, batch, steps, hidden = u.shape
    cs, ns = [], []
    for dt, scheme, gen, L in zip(deltas, schemes, generators, lengths):
        coeffs = scheme.affine_coefficients(dt, scheme.draw(steps, batch, hidden, h0[0], gen))
        if coeffs is None:
            return None
        c, n = coeffs
        mask = step_mask(L, batch, steps, h0)
        if mask is not None:  # c = n = 0 on padded steps: h_{m+1} = h_m exactly
            c = c * mask.unsqueeze(-1)
            n = None if n is None else n * mask.unsqueeze(-1)
        cs.append(c)
        ns.append(n)
    common = torch.broadcast_shapes(*(c.shape for c in cs))  # masks may differ between members
    c = torch.stack([v.expand(common) for v in cs]).transpose(0, 1)  # (M, S, B, N) view, model-major
    n = None
    if any(v is not None for v in ns):
        n = torch.stack([u.new_zeros(steps, batch, hidden) if v is None else v for v in ns]).transpose(0, 1)
    weight = torch.stack([d.stacked_weight() for d in drifts])
    return lipschitz_recurrence(u, h0, weight, c, n, workspace)


def integrate(
    drift: Drift,
    h0: torch.Tensor,
    u: torch.Tensor,
    dt,
    scheme: NoiseScheme | None = None,
    noise: bool = False,
    generator: torch.Generator | None = None,
    return_states: bool = False,
    lengths=None,
    backend: str = "auto",
    workspace=None,
):
    """Run the recurrence from h0 (B, d_h) over encoded inputs u (B, M, d_u): the one entry
    point every model's recurrence goes through. ``u`` may be
    :class:`~noisyrnn.dynamics.LinearInputs` (``Drift.encoded``): the cell engine then forms
    u_m inside its loop; every other path materialises it first.

    Returns h_M, or the states (B, M+1, d_h) including h_0 when ``return_states``.
    With ``noise=False`` (or no scheme) the update is exactly eq (6). With ``lengths``,
    states stay frozen on each sequence's padded steps (:func:`step_mask`).

    ``backend`` (:mod:`noisyrnn.engine.backend`): ``"auto"`` runs the C++ cell engine
    (:mod:`noisyrnn.engine.cells`) where it applies, else the ATen Function of eq (3)
    (:mod:`noisyrnn.engine.aten`) where :func:`fused_applies`, else the generic loop below, unless
    a :func:`~noisyrnn.engine.backend.use_backend` block chose otherwise; ``"cells"``, ``"aten"``
    and ``"fused"`` (either) require that path; ``"loop"`` always runs the loop (the reference,
    which ``torch.func`` can differentiate). The cell engine returns the states too (its backward
    takes a gradient at every step); the ATen path h_M only. ``workspace``: their
    buffer pool (:class:`noisyrnn.engine.workspace.Workspace`, owned by the model).
    """
    if return_states:
        outputs = integrate_outputs(drift, h0, u, dt, scheme, noise, generator, lengths, backend, workspace)
        return torch.cat([h0.unsqueeze(1), outputs], dim=1)
    return _integrate(drift, h0, u, dt, scheme, noise, generator, lengths, backend, workspace, outputs=False)


def integrate_outputs(drift: Drift, h0: torch.Tensor, u, dt, scheme: NoiseScheme | None = None,
                      noise: bool = False, generator: torch.Generator | None = None, lengths=None,
                      backend: str = "auto", workspace=None) -> torch.Tensor:
    """The states h_1..h_M (B, M, d_h) of :func:`integrate` (arguments alike): the output
    sequence of a recurrent layer. On the cell engine the backward takes a gradient at every
    step inside the C++ loop; past a sequence's length its state stays frozen."""
    return _integrate(drift, h0, u, dt, scheme, noise, generator, lengths, backend, workspace, outputs=True)


def _integrate(drift, h0, u, dt, scheme, noise, generator, lengths, backend, workspace, outputs):
    backend = effective_backend(backend)
    if scheme is None or not noise:
        scheme = Deterministic()
    fast = backend != "loop"
    if fast:
        from .cells import cell_final_state, cell_states, cells_apply

        deltas = step_sizes(dt, u.shape[1], h0.shape[-1], h0)
        workspace = workspace if workspace is not None else Workspace(0)
        if allows(backend, "cells") and cells_apply(drift, scheme, h0, u, deltas):
            lengths = check_lengths(lengths, u.shape[0], u.shape[1])
            run = cell_states if outputs else cell_final_state
            return run(drift, h0, u, deltas, scheme, generator, lengths, workspace)
    if isinstance(u, LinearInputs):  # every path below takes the encoded inputs as a tensor
        u = u.materialise()
    if fast and not outputs and allows(backend, "aten") and fused_applies(drift, scheme):
        out = fused_members_final_state([drift], h0.unsqueeze(0), u.unsqueeze(0), [deltas], [scheme],
                                        [generator], [lengths], workspace)
        if out is not None:
            return out[0]
    if backend not in ("auto", "loop"):
        raise ConfigError(f"the {backend!r} recurrence does not apply to {type(drift).__name__} with "
                          f"{type(scheme).__name__}{' (states requested)' if outputs else ''}")
    states = _loop(drift, h0, u, dt, scheme, generator, outputs, lengths)
    return states[:, 1:] if outputs else states


def _loop(drift, h0, u, dt, scheme, generator, return_states, lengths):
    """The generic Euler / Euler-Maruyama loop (eq 5 / eq 6) for any drift and scheme."""
    batch, steps = u.shape[0], u.shape[1]
    hidden = h0.shape[-1]
    deltas = step_sizes(dt, steps, hidden, h0)
    per_step = deltas.shape[0] == steps and steps > 1
    drawn = scheme.draw(steps, batch, drift.noise_size, h0, generator)
    mask = step_mask(lengths, batch, steps, h0)
    live = None if mask is None else mask.bool().unsqueeze(-1)  # (M, B, 1)
    f_of = drift.step_function() if hasattr(drift, "step_function") else drift
    u_steps = u.unbind(1)
    h = h0
    states = [h0] if return_states else None
    for m in range(steps):
        u_m = u_steps[m]
        f = f_of(h, u_m)
        dt_m = deltas[m] if per_step else deltas[0]
        if drawn is None:
            noise_m = None
        elif isinstance(drawn, tuple):
            noise_m = tuple(d[m] for d in drawn)
        else:
            noise_m = drawn[m]
        h_next = scheme.step(h, f, dt_m, u_m, None) if drawn is None else drift.noisy_step(
            scheme, h, f, dt_m, u_m, noise_m)
        h = h_next if live is None else torch.where(live[m], h_next, h)
        if states is not None:
            states.append(h)
    if states is not None:
        return torch.stack(states, dim=1)
    return h
