"""How the recurrence of eqs (5)-(6) runs, fast: the integration entry point and backend choice,
the reference loop, the ATen path, the C++ cell engine, its workspace, Philox and the build.

=================  ==========================================================================
``integrate``      the one entry (:func:`~noisyrnn.engine.integrate.integrate`): step sizes,
                   padding mask, backend choice, and the generic reference loop
``backend``        ``use_backend`` / ``integrate(backend=...)``: which path runs
``cells``          the C++ cell engine (every drift form, noise drawn in the loop), CPU float32
``aten``           the hand-written autograd Function of eq (3) on ATen ops (any device/dtype)
``workspace``      buffers the fast paths reuse between calls
``philox``         Philox4x32-10, the counter-based noise both the engine and the loop draw
``build``          compiles ``csrc/`` (``ops.cpp``, ``philox.h``, ``gemm.h``, ``forms.h``)
``forms``          the drift forms and noise kinds, read from ``csrc/forms.h``
=================  ==========================================================================
"""

from .backend import BACKENDS, use_backend
from .integrate import check_lengths, integrate, integrate_outputs, step_mask, step_sizes
from .workspace import Workspace

__all__ = ["BACKENDS", "Workspace", "check_lengths", "integrate", "integrate_outputs", "step_mask", "step_sizes",
           "use_backend"]
