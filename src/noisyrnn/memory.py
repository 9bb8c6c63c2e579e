"""The memory budget: work that cannot fit is refused up front with its estimate.

Rule: a model, a training run or an evaluation batch may use at most the *budget*, by default
half of this machine's physical memory; ``NOISYRNN_MEMORY_BUDGET`` sets it (bytes, a size such
as ``8GiB`` / ``500MB``, or a fraction of the machine such as ``0.8``), and functions take an
explicit ``budget``. Estimates are upper bounds of the float32 tensors a step holds: the
parameters (and, in training, their gradients, Adam moments, the selected copy and the
checkpoint copy), the batch's inputs, and, in training, the states the backward pass keeps
(about ``STATE_COPIES`` tensors of shape (batch, steps, hidden) for every drift form).
Evaluation and prediction do not refuse: they choose a batch of sequences that fits.
"""

from __future__ import annotations

import os
import re

from .errors import NoisyRNNError

BUDGET_ENV = "NOISYRNN_MEMORY_BUDGET"
DEFAULT_FRACTION = 0.5
FLOAT = 4  # bytes of a float32
TRAIN_PARAM_COPIES = 7  # weights, gradient, Adam's two moments, selected copy, checkpoint copy, workspace
STATE_COPIES = 6  # per (sequence, step, hidden unit) kept for the backward pass: h, pre-activation, noise, ...
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class MemoryBudgetExceeded(NoisyRNNError):
    """The estimated memory of a model, run or batch is over the budget."""


def machine_memory() -> int:
    """Physical memory of this machine in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_size(text: str) -> int:
    """``"8GiB"`` -> bytes; a bare number <= 1 is a fraction of the machine's memory."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise NoisyRNNError(f"{BUDGET_ENV} must be a size such as 8GiB or 500MB, or a fraction such as 0.5; "
                            f"got {text!r}")
    value = float(m.group(1))
    if not m.group(2) and value <= 1:
        return int(value * machine_memory())
    return int(value * _UNITS[m.group(2).lower()])


def memory_budget(budget: int | str | None = None) -> int:
    """The budget in bytes: ``budget`` if given, else $NOISYRNN_MEMORY_BUDGET, else half the machine."""
    if budget is None:
        budget = os.environ.get(BUDGET_ENV)
    if budget is None:
        return int(DEFAULT_FRACTION * machine_memory())
    return budget if isinstance(budget, int) else parse_size(budget)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} EiB"


def parameter_count(hidden: int, input_size: int, num_classes: int) -> int:
    """Upper bound on any registered model's parameters: four (H, H) maps (LSTM's gates; the
    Lipschitz family has two), four input maps, the decoder and per-unit vectors."""
    H, d, C = int(hidden), int(input_size), int(num_classes)
    return 4 * H * H + 4 * H * d + C * H + 8 * H + C


def model_bytes(hidden: int, input_size: int, num_classes: int) -> int:
    return FLOAT * parameter_count(hidden, input_size, num_classes)


def training_bytes(hidden: int, input_size: int, num_classes: int, batch: int, steps: int, members: int = 1) -> int:
    """Peak estimate of one training step of ``members`` models on a (batch, steps) batch."""
    params = TRAIN_PARAM_COPIES * model_bytes(hidden, input_size, num_classes)
    states = STATE_COPIES * FLOAT * int(batch) * int(steps) * int(hidden)
    inputs = 3 * FLOAT * int(batch) * int(steps) * (int(input_size) + int(hidden))  # x, its encoding U x + b, grad
    return int(members) * (params + states + inputs)


def inference_bytes(hidden: int, input_size: int, num_classes: int, batch: int, steps: int) -> int:
    """Estimate of a no-gradient forward pass: the model, the batch's inputs and their encoding."""
    return model_bytes(hidden, input_size, num_classes) + 3 * FLOAT * int(batch) * int(steps) * (
        int(input_size) + int(hidden)) + 16 * FLOAT * int(batch) * int(hidden)


def ensure_fits(what: str, estimate: int, budget: int | str | None = None, hint: str = "") -> None:
    """Raise :class:`MemoryBudgetExceeded` naming ``what``, the estimate and the budget."""
    limit = memory_budget(budget)
    if estimate > limit:
        rule = (f"set by {BUDGET_ENV}" if budget is None and os.environ.get(BUDGET_ENV) else
                "given" if budget is not None else "half of this machine's memory")
        raise MemoryBudgetExceeded(
            f"{what} needs about {human(estimate)}, over the memory budget of {human(limit)} ({rule})"
            + (f"; {hint}" if hint else "") + f"; a larger budget: {BUDGET_ENV}=SIZE")


def fitting_batch(per_sequence: int, fixed: int, wanted: int, budget: int | str | None = None) -> int:
    """The largest batch <= ``wanted`` whose ``fixed + batch * per_sequence`` fits the budget (at least 1)."""
    room = memory_budget(budget) - fixed
    return max(1, min(int(wanted), room // max(1, per_sequence)))


def evaluation_batch(model, steps: int, wanted: int, with_gradient: bool = False, budget: int | str | None = None) -> int:
    """The batch of sequences (<= ``wanted``) an evaluation of ``model`` on sequences of ``steps``
    steps may use: smaller than asked when the asked one would exceed the budget. ``with_gradient``:
    the pass differentiates through the model (adversarial attacks)."""
    H, d = int(getattr(model, "hidden_size", 1)), int(model.input_size)
    C = int(getattr(model, "num_classes", None) or getattr(model, "num_outputs"))
    weights = model_bytes(H, d, C)
    if with_gradient:
        fixed, per = TRAIN_PARAM_COPIES * weights, training_bytes(H, d, C, 1, steps) - TRAIN_PARAM_COPIES * weights
    else:
        fixed, per = weights, inference_bytes(H, d, C, 1, steps) - weights
    batch = fitting_batch(per, fixed, wanted, budget)
    ensure_fits(f"evaluating one sequence of {steps} steps", fixed + batch * per, budget,
                hint="give shorter sequences")
    return batch
