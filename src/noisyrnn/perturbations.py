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


@dataclass(frozen=True)
class SaltAndPepper:
    """Each value independently set to the data's max w.p. alpha/2 and to its min w.p. alpha/2."""

    sigma: float  # alpha, the proportion of defective values
    value_range: tuple = (0.0, 1.0)
    prefix = "sp"

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        r = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        lo, hi = self.value_range
        out = torch.where(r < self.sigma / 2, torch.full_like(x, hi), x)
        return torch.where((r >= self.sigma / 2) & (r < self.sigma), torch.full_like(x, lo), out)


def _kinds():
    from .attacks import FGSM, PGD

    return {cls.prefix: cls for cls in (AdditiveWhiteNoise, MultiplicativeWhiteNoise, SaltAndPepper, FGSM, PGD)}


RANGED = ("sp", "fgsm", "pgd")  # kinds that need the data range
_COLUMN = re.compile(r"^([a-z]+)_([0-9]*\.?[0-9]+)$")


def parse_column(column: str, value_range=None):
    """``clean`` -> None; ``white_0.4`` -> AdditiveWhiteNoise(0.4), ``sp_0.1`` -> SaltAndPepper,
    ``fgsm_0.05`` / ``pgd_0.05`` -> attacks; errors name the column. ``value_range`` is the
    clean data's (min, max): salt and pepper values and the attacks' clamp."""
    if column == "clean":
        return None
    kinds = _kinds()
    m = _COLUMN.match(column)
    if not m or m.group(1) not in kinds:
        raise ConfigError(
            f"unknown perturbation column {column!r}; use 'clean' or KIND_LEVEL with KIND in "
            f"{', '.join(sorted(kinds))} (e.g. white_0.4)"
        )
    level = check_positive(m.group(2), f"level of {column}", allow_zero=True)
    kind = m.group(1)
    if kind == "sp":
        if level > 1:
            raise ConfigError(f"perturbation column {column!r}: salt and pepper's level is the share of values "
                              f"replaced, a number in [0, 1]; got {level:g}")
        return SaltAndPepper(level, tuple(value_range) if value_range is not None else (0.0, 1.0))
    if kind in RANGED:
        return kinds[kind](level, None if value_range is None else tuple(value_range))
    return kinds[kind](level)


def column_name(perturbation) -> str:
    return "clean" if perturbation is None else f"{perturbation.prefix}_{perturbation.sigma:g}"
