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

from .dynamics import Drift
from .errors import InputError
from .noise import Deterministic, NoiseScheme


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
):
    """Run the recurrence from h0 (B, d_h) over encoded inputs u (B, M, d_u).

    Returns h_M, or the states (B, M+1, d_h) including h_0 when ``return_states``.
    With ``noise=False`` (or no scheme) the update is exactly eq (6). With ``lengths``,
    states stay frozen on each sequence's padded steps (:func:`step_mask`).
    """
    batch, steps = u.shape[0], u.shape[1]
    hidden = h0.shape[-1]
    deltas = step_sizes(dt, steps, hidden, h0)
    per_step = deltas.shape[0] == steps and steps > 1
    if scheme is None or not noise:
        scheme = Deterministic()
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
