"""Noise injection for the layers of :mod:`noisyrnn.nn`: explicit, never switched by
``module.train()``.

A layer injects its hidden-state noise (eq 5) only when a call asks for it, by the forward
keyword (``layer(x, noise=True, generator=g)``) or inside a :func:`noise_injection` block
(``with noise_injection(generator=g): loss = model(x)``); otherwise it integrates eq (6). The
block's setting is context-local (a :class:`contextvars.ContextVar`): threads and async tasks
each see their own, and it is restored on exit.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch

_NOISE: ContextVar[tuple[bool, torch.Generator | None]] = ContextVar("noisyrnn_noise_injection",
                                                                   default=(False, None))


@contextmanager
def noise_injection(enabled: bool = True, generator: torch.Generator | None = None):
    """Inject the layers' hidden-state noise in this block (``enabled=False``: turn it off in
    an enclosing block), drawn from ``generator`` (torch's global generator if None)."""
    token = _NOISE.set((bool(enabled), generator))
    try:
        yield
    finally:
        _NOISE.reset(token)


def resolve_noise(noise: bool | None, generator: torch.Generator | None) -> tuple[bool, torch.Generator | None]:
    """(inject, generator) for a call: the forward keyword when given, else the enclosing
    :func:`noise_injection` block's setting (off outside any block)."""
    if noise is None:
        enabled, block_generator = _NOISE.get()
        return enabled, generator if generator is not None else block_generator
    return bool(noise), generator
