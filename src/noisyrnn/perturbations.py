"""Input perturbations of section 7, applied at evaluation time to clean inputs x.

Each perturbation is a callable ``p(x, generator) -> x_tilde`` with a column name used in
results tables (``white_0.4``, ``mult_0.4``). Draws come from the given generator, so an
evaluation is reproducible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .errors import ConfigError, check_positive


@dataclass(frozen=True)
class AdditiveWhiteNoise:
    """x + dx with dx ~ N(0, sigma^2) elementwise."""

    sigma: float
    prefix = "white"

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        return x + self.sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


@dataclass(frozen=True)
class MultiplicativeWhiteNoise:
    """x * dx with dx ~ N(1, sigma_M^2) elementwise."""

    sigma: float
    prefix = "mult"

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        return x * (1.0 + self.sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device))


PERTURBATIONS = {cls.prefix: cls for cls in (AdditiveWhiteNoise, MultiplicativeWhiteNoise)}
_COLUMN = re.compile(r"^([a-z]+)_([0-9]*\.?[0-9]+)$")


def parse_column(column: str):
    """``clean`` -> None; ``white_0.4`` -> AdditiveWhiteNoise(0.4); errors name the column."""
    if column == "clean":
        return None
    m = _COLUMN.match(column)
    if not m or m.group(1) not in PERTURBATIONS:
        raise ConfigError(
            f"unknown perturbation column {column!r}; use 'clean' or KIND_LEVEL with KIND in "
            f"{', '.join(sorted(PERTURBATIONS))} (e.g. white_0.4)"
        )
    return PERTURBATIONS[m.group(1)](check_positive(m.group(2), f"level of {column}", allow_zero=True))


def column_name(perturbation) -> str:
    return "clean" if perturbation is None else f"{perturbation.prefix}_{perturbation.sigma:g}"
