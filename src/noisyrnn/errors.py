"""Errors raised at the library's boundaries, each naming the problem in plain words."""

from __future__ import annotations

import math

import torch


class NoisyRNNError(Exception):
    """Base class: every error the library raises on purpose derives from it."""


class InputError(NoisyRNNError, ValueError):
    """A tensor or argument given by the user has the wrong shape, dtype or values."""


class ConfigError(NoisyRNNError, ValueError):
    """An unknown option, model name or malformed configuration value."""


class DataError(NoisyRNNError):
    """A data file is missing, corrupt (checksum mismatch) or malformed."""


def check_sequences(x: torch.Tensor, input_size: int, name: str = "x") -> None:
    """Validate a batch-first sequence tensor of shape (B, T, input_size) with finite values."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise InputError(
            f"{name} must have shape (batch, time, {input_size}) (batch-first), "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[-1] != input_size:
        raise InputError(
            f"{name} has {x.shape[-1]} features per step but the model expects "
            f"input_size={input_size}; shape {tuple(x.shape)}"
        )
    if x.shape[1] == 0:
        raise InputError(f"{name} has zero time steps; shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise InputError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"{name} contains {bad} NaN or infinite value(s)")


def check_labels(y: torch.Tensor, num_classes: int, batch: int, name: str = "y") -> None:
    """Validate integer class labels of shape (B,) in [0, num_classes)."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != batch:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise InputError(f"{name} must be a 1-D tensor of {batch} labels, got {shape}")
    if torch.is_floating_point(y):
        raise InputError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise InputError(
            f"{name} has labels outside [0, {num_classes}): min {int(y.min())}, max {int(y.max())}"
        )


def check_positive(value: float, name: str, allow_zero: bool = False) -> float:
    """Return value as float if it is a finite number > 0 (or >= 0 with allow_zero)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def check_choice(value: str, choices, name: str) -> str:
    """Return value if it is one of choices, else raise ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(sorted(choices))}")
    return value
