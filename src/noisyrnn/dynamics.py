"""Drift f(h, x) and diffusion sigma(h, x) of the continuous-time NRNN, eq (2).

A drift is an ``nn.Module`` with two methods:

* ``encode(x)`` maps the whole input sequence (B, T, d_x) to per-step drive terms
  (B, T, d_u) once, outside the recurrence (for eq (3) this is ``U x + b``); the
  default is the identity, so a user-defined drift may take the raw input.
* ``forward(h, u_m)`` returns f(h, x_m) of shape (B, d_h).

A diffusion is an ``nn.Module`` with ``noise_type`` ``"diagonal"`` (sigma is
diag(g), g of shape (B, d_h), and the Brownian motion has r = d_h components) or
``"general"`` (sigma of shape (B, d_h, r)); ``forward(h, u_m, f_m)`` receives the
drift value too, so state-dependent noise such as eq (4) costs no second drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, check_positive


# Inputs with at most this many channels are projected inside the cell engine's step loop
# (``LinearInputs``); wider inputs are encoded once, as one GEMM over every step.
IN_LOOP_MAX_CHANNELS = 32


@dataclass(frozen=True)
class LinearInputs:
    """Encoded inputs u = x U^T + b left unevaluated: the cell engine (noisyrnn.engine.cells)
    forms u_m inside its step loop from the raw inputs x (B, M, d_x), so the (B, M, d_u) tensor
    of drives (128x the input for one channel) is never written and read back; every other
    path calls :meth:`materialise`. Built by :meth:`Drift.encoded`; with a leading member axis
    (x (S, B, M, d_x), U (S, d_u, d_x), b (S, d_u)) for an ensemble's members."""

    x: torch.Tensor
    weight: torch.Tensor  # U (d_u, d_x), or (S, d_u, d_x)
    bias: torch.Tensor | None  # b (d_u), or (S, d_u)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.x.shape[:-1], self.weight.shape[-2]))

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    @property
    def device(self) -> torch.device:
        return self.x.device

    def member(self, s: int) -> "LinearInputs":
        """Member ``s`` of inputs with a member axis."""
        return LinearInputs(self.x[s], self.weight[s], None if self.bias is None else self.bias[s])

    def materialise(self) -> torch.Tensor:
        if self.weight.dim() == 2:
            return F.linear(self.x, self.weight, self.bias)
        u = torch.matmul(self.x, self.weight.transpose(1, 2).unsqueeze(1))  # (S, B, M, d_u)
        return u if self.bias is None else u + self.bias[:, None, None]


class Drift(nn.Module):
    """Base class for drifts f(h, x); see the module docstring.

    ``hidden_size`` is the size of the state h the integrator carries; a drift whose
    state holds more than the classifier reads (coRNN's (y, z)) sets ``readout_size``
    and overrides ``readout``.
    """

    hidden_size: int
    # The closed form a drift declares, for the code paths written for it: "lipschitz" is
    # eq (3), f = alpha A h + tanh(W h + U x + b) with ``stacked_weight()`` = [alpha A^T | W^T]
    # (the fused recurrences, seed-batched ensembles, certified margin bounds); "tanh",
    # "modrelu", "cornn": the baselines' forms the cell engine runs (noisyrnn.engine.cells,
    # which reads ``cell_operands()``); None: the generic loop only.
    form: str | None = None

    def cell_operands(self):
        """(weight (H, P), bias or None, gamma, eps) of the declared form for
        :mod:`noisyrnn.engine.cells`; drifts with a ``form`` of that table override it."""
        raise NotImplementedError(f"{type(self).__name__} declares no cell form")

    @property
    def readout_size(self) -> int:
        return self.hidden_size

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """The part of the state the decoder sees (all of it by default)."""
        return h

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def input_projection(self):
        """(U (d_u, d_x), b (d_u)) when ``encode(x) = x U^T + b``, else None (the default: any
        encoding). Declared so the cell engine can apply U inside its step loop."""
        return None

    def encoded(self, x: torch.Tensor):
        """``encode(x)``, or the same as :class:`LinearInputs` (evaluated inside the engine's
        loop) for a declared linear encoder and at most ``IN_LOOP_MAX_CHANNELS`` input channels."""
        projection = self.input_projection()
        if projection is None or x.shape[-1] > IN_LOOP_MAX_CHANNELS:
            return self.encode(x)
        return LinearInputs(x, *projection)

    def step_function(self):
        """A callable (h, u_m) -> f used inside the loop; override to hoist per-sequence work."""
        return self

    @property
    def noise_size(self) -> int:
        """Size of the part of the state that hidden-state noise enters (all of it by default)."""
        return self.hidden_size

    def noisy_step(self, scheme, h, f, dt, u, noise_m):
        """One step of eq (5) (or the research scheme) with the drawn noise ``noise_m``; a drift
        whose noise enters only part of its state (coRNN: the velocity) overrides this."""
        return scheme.step(h, f, dt, u, noise_m)

    def forward(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class LinearEncoderDrift(Drift):
    """A drift whose drive is linear in the input, u = U x + b with ``self.encoder`` an
    ``nn.Linear`` (eq 3's encoder, and the baselines'): it declares that projection
    (``input_projection``) so the cell engine applies it inside its step loop."""

    encoder: nn.Linear

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def input_projection(self):
        return self.encoder.weight, self.encoder.bias


def lipschitz_matrix(base: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """beta*(B - B^T) + (1 - beta)*(B + B^T) - gamma*I (Lipschitz RNN parametrisation)."""
    eye = torch.eye(base.shape[0], dtype=base.dtype, device=base.device)
    return beta * (base - base.T) + (1.0 - beta) * (base + base.T) - gamma * eye


def eq3_drift(h: torch.Tensor, weight: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Eq (3), f(h, x) = alpha A h + tanh(W h + u) with u = U x + b, from the stacked weight
    [alpha A^T | W^T] (d_h, 2 d_h): both products in one GEMM. The one Python definition; the
    fused paths (noisyrnn.engine.aten's ATen loop, the C++ cell engine) inline it and are tested
    against it."""
    ah, wh = (h @ weight).split(weight.shape[0], dim=-1)
    return ah + torch.tanh(wh + u)


class LipschitzDrift(LinearEncoderDrift):
    """The paper's drift, eq (3): f(h, x) = alpha * A h + a(W h + U x + b).

    A and W are built from free matrices B and C with the Lipschitz RNN
    parametrisation (beta, gamma_A, gamma_W). ``alpha = 0`` with ``beta = 1`` gives
    the antisymmetric RNN drift. B and C start as N(0, (init_std / d_h)^2), as in
    the authors' research code. The activation a is tanh.
    """

    form = "lipschitz"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        beta: float = 0.75,
        gamma_a: float = 0.001,
        gamma_w: float = 0.001,
        alpha: float = 1.0,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(beta) <= 1.0:
            raise ConfigError(f"beta must lie in [0, 1], got {beta!r}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.beta = float(beta)
        self.gamma_a = check_positive(gamma_a, "gamma_a", allow_zero=True)
        self.gamma_w = check_positive(gamma_w, "gamma_w", allow_zero=True)
        self.alpha = float(alpha)
        self.init_std = check_positive(init_std, "init_std", allow_zero=True)
        self.encoder = nn.Linear(self.input_size, self.hidden_size)
        self.B = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.C = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.init_std / self.hidden_size
        nn.init.normal_(self.B, 0.0, std)
        nn.init.normal_(self.C, 0.0, std)
        self.encoder.reset_parameters()

    @property
    def A(self) -> torch.Tensor:
        return lipschitz_matrix(self.B, self.beta, self.gamma_a)

    @property
    def W(self) -> torch.Tensor:
        return lipschitz_matrix(self.C, self.beta, self.gamma_w)

    def stacked_weight(self) -> torch.Tensor:
        """[alpha*A^T | W^T] of shape (d_h, 2 d_h): both products of a step in one GEMM."""
        return torch.cat([self.alpha * self.A.T, self.W.T], dim=1)

    def cell_operands(self):
        return self.stacked_weight(), None, 0.0, 0.0

    def step_function(self):
        weight = self.stacked_weight()
        return lambda h, u: self.forward(h, u, weight)

    def forward(self, h: torch.Tensor, u: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return eq3_drift(h, self.stacked_weight() if weight is None else weight, u)

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, hidden_size={self.hidden_size}, beta={self.beta}, "
            f"gamma_a={self.gamma_a}, gamma_w={self.gamma_w}, alpha={self.alpha}"
        )


class Diffusion(nn.Module):
    """Base class for diffusion coefficients sigma(h, x); see the module docstring."""

    noise_type: str = "diagonal"

    def brownian_dim(self, hidden_size: int) -> int:
        """r, the number of Brownian components."""
        return hidden_size

    def forward(self, h: torch.Tensor, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class PaperDiffusion(Diffusion):
    """Eq (4): sigma(h, x) = eps * (sigma1 * I + sigma2 * diag(f(h, x))), diagonal noise.

    ``sigma1`` scales the additive part and ``sigma2`` the multiplicative part;
    both share one Brownian increment per unit, as eq (4) is one diagonal matrix.
    """

    noise_type = "diagonal"

    def __init__(self, eps: float = 1.0, sigma1: float = 0.0, sigma2: float = 0.0) -> None:
        super().__init__()
        self.eps = check_positive(eps, "eps", allow_zero=True)
        self.sigma1 = check_positive(sigma1, "sigma1", allow_zero=True)
        self.sigma2 = check_positive(sigma2, "sigma2", allow_zero=True)

    def forward(self, h: torch.Tensor, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.eps * (self.sigma1 + self.sigma2 * f)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, sigma1={self.sigma1}, sigma2={self.sigma2}"


class MatrixDiffusion(Diffusion):
    """General r-dimensional additive noise: sigma(h, x) = G, a fixed (d_h, r) matrix."""

    noise_type = "general"

    def __init__(self, matrix: torch.Tensor, trainable: bool = False) -> None:
        super().__init__()
        if matrix.dim() != 2:
            raise ConfigError(f"diffusion matrix must be 2-D (d_h, r), got shape {tuple(matrix.shape)}")
        if trainable:
            self.matrix = nn.Parameter(matrix.clone())
        else:
            self.register_buffer("matrix", matrix.clone())

    def brownian_dim(self, hidden_size: int) -> int:
        if self.matrix.shape[0] != hidden_size:
            raise ConfigError(
                f"diffusion matrix has {self.matrix.shape[0]} rows but hidden_size is {hidden_size}"
            )
        return self.matrix.shape[1]

    def forward(self, h: torch.Tensor, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.matrix.expand(h.shape[0], *self.matrix.shape)


def research_to_sde(mult_noise: float, add_noise: float, step: float) -> dict:
    """Map the research-code noise (mult, add) at step size ``step`` to eq (4)'s parameters.

    The research scheme's increment is ``step*m*f + add*xi`` with m ~ mult*U(0,1) + 1 - mult.
    Matching its first two moments with eq (5)'s ``step*f + eps*(s1 + s2 f)*sqrt(step)*xi``:
    the drift is shrunk by ``(1 - mult/2)`` on average, the additive term has standard
    deviation ``add`` (so eps*sigma1 = add/sqrt(step)), and the multiplicative term has
    standard deviation ``step*|f|*mult/sqrt(12)`` (so eps*sigma2 = mult*sqrt(step/12)).
    The research noise is uniform, not Gaussian: only the first two moments agree.
    """
    step = check_positive(step, "step")
    return {
        "eps": 1.0,
        "sigma1": float(add_noise) / math.sqrt(step),
        "sigma2": float(mult_noise) * math.sqrt(step / 12.0),
        "drift_factor": 1.0 - float(mult_noise) / 2.0,
    }
