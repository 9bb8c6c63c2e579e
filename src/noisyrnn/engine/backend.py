"""Which path runs a recurrence: chosen by argument (``integrate(backend=...)``), or for a block
of code by :func:`use_backend` (tests and benchmarks), never by a module-level switch.

``auto``: the C++ cell engine where it applies (CPU, float32, a declared drift form, a scheme
drawing in the loop, the extension built), else the ATen autograd Function of eq (3)
(any device and dtype), else the generic loop. ``cells`` / ``aten`` / ``fused`` (either of the
two) require that path and raise when it does not apply; ``loop`` always runs the generic loop
(the reference, which ``torch.func`` can differentiate).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from ..errors import ConfigError

BACKENDS = ("auto", "cells", "aten", "fused", "loop")
_CHOICE: ContextVar[str] = ContextVar("noisyrnn_engine_backend", default="auto")


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ConfigError(f"unknown recurrence backend {name!r}; known: {', '.join(BACKENDS)}")
    return name


@contextmanager
def use_backend(name: str):
    """Inside the block, recurrences asked for ``backend="auto"`` run on ``name`` (this thread and
    context only; the previous choice comes back on exit)."""
    token = _CHOICE.set(check_backend(name))
    try:
        yield
    finally:
        _CHOICE.reset(token)


def effective_backend(requested: str = "auto") -> str:
    """``requested`` unless it is ``auto``, then the block's choice (:func:`use_backend`)."""
    check_backend(requested)
    return _CHOICE.get() if requested == "auto" else requested


def allows(backend: str, path: str) -> bool:
    """Whether the effective ``backend`` may run ``path`` (``cells`` or ``aten``)."""
    return backend in ("auto", "fused", path)
