"""Windows of k consecutive samples per step (``params.patch = k``): a series of T samples of
d channels is read as ceil(T/k) steps of k d channels, so the recurrence of eq (5) takes T/k
Euler steps instead of T, its input drive u_m = U x_m + b (eq 3) seeing k samples at once.
Shorter sequences help recurrent models on long series (the paper's row-by-row MNIST, 28
steps of 28 pixels, against pixel-by-pixel, 784 steps of one)."""

from __future__ import annotations

import torch

from ..engine.integrate import check_lengths
from ..errors import InputError


def windows(x: torch.Tensor, lengths, k: int):
    """(x (B, ceil(T/k), k d), lengths ceil(L/k)) for x (B, T, d) and lengths (B,) or None: step j
    holds samples jk .. jk+k-1 in time order, zeros past each sequence's length and past T.
    k = 1 returns the inputs unchanged."""
    if k == 1:
        return x, lengths
    batch, steps, channels = x.shape
    lengths = check_lengths(lengths, batch, steps)
    if lengths is not None:  # samples past a length are not the sequence's: zero in its last window
        real = torch.arange(steps, device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1)
        x = x * real.unsqueeze(-1).to(x.dtype)
    pad = (-steps) % k
    if pad:
        x = torch.cat([x, x.new_zeros(batch, pad, channels)], dim=1)
    return x.reshape(batch, (steps + pad) // k, k * channels), None if lengths is None else (lengths + k - 1) // k


def window_count(steps: int, k: int) -> int:
    """Steps of the recurrence for ``steps`` samples read in windows of ``k``."""
    return -(-int(steps) // int(k))


def read_chunk(x_chunk: torch.Tensor, lengths, k: int):
    """A streamed chunk (B, t, d) as the recurrence takes it: (steps, lengths, ended). ``lengths``
    (B,) integers in [0, t] are each sequence's real samples in the chunk, 0 for a sequence that
    has ended (``ended``, True there: its state must stay; its lengths entry becomes 1 so that the
    step can run and be discarded); windows of ``k`` samples need chunks of a multiple of k."""
    batch, steps = x_chunk.shape[0], x_chunk.shape[1]
    if steps % k:
        raise InputError(f"this model reads windows of patch = {k} samples: stream chunks of a multiple of {k} "
                         f"samples (got {steps}); the last chunk of a sequence may end early through lengths")
    ended = None
    if lengths is not None:
        lengths = torch.as_tensor(lengths)
        if (lengths.shape != (batch,) or torch.is_floating_point(lengths) or lengths.dtype == torch.bool
                or (batch and (int(lengths.min()) < 0 or int(lengths.max()) > steps))):
            raise InputError(f"chunk lengths must be (B,) = ({batch},) integers in [0, {steps}], got "
                             f"{lengths.tolist()}")
        ended = lengths == 0
        lengths = lengths.clamp(min=1)
    x_chunk, lengths = windows(x_chunk, lengths, k)
    return x_chunk, lengths, ended

