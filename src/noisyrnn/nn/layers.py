"""Noisy recurrent layers with ``torch.nn.RNN``'s conventions, for any PyTorch model.

``NoisyRNN(input_size, hidden_size, num_layers=1, model="nrnn", batch_first=False,
dropout=0.0, **params)`` stacks ``num_layers`` recurrences of a registered drift model
(:data:`noisyrnn.models.registry.RECURRENCES`: the Lipschitz family of eq (3), the
antisymmetric, gated antisymmetric, coRNN and expRNN cells) with that model's noise setting
(``params``: the declared model parameters, e.g. ``add_noise=0.1`` or ``noise="sde",
sigma1=0.3``; ``noisyrnn settings --model NAME`` lists them). :class:`NRNN`,
:class:`LipschitzRNN`, :class:`AntisymmetricRNN`, :class:`CoRNN` and :class:`ExpRNN` fix the
model.

``forward(input, h0=None, *, lengths=None, noise=None, generator=None) -> (output, h_n)``:
``input`` (T, B, d) (``batch_first``: (B, T, d)) or a ``PackedSequence``; ``output`` every
step's output of the last layer, (T, B, output_size), zero past a sequence's length (packed
again for a packed input); ``h_n`` (num_layers, B, state_size) each sequence's own last state
per layer (coRNN's state is (y, z): ``state_size = 2 * hidden_size``, its output y). Passing
``h_n`` back as ``h0`` continues a sequence exactly (streaming). Hidden-state noise (eq 5) is
injected only when asked for (:mod:`noisyrnn.nn.noise`), never by ``.train()``; ``dropout``
between layers follows ``.train()`` as in torch. On the CPU in float32 the recurrence and its
backward (a gradient at every step) run in the C++ cell engine.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..engine.integrate import check_lengths, step_mask
from ..errors import ConfigError, InputError
from ..models.recurrent import Recurrence
from ..models.registry import RECURRENCES, resolve_params
from ..parameters import Param, check_value
from .noise import resolve_noise


class NoisyRNN(nn.Module):
    """A stack of noisy continuous-time recurrences of one registered drift model (see the
    module docstring for the conventions)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, model: str = "nrnn",
                 batch_first: bool = False, dropout: float = 0.0, **params) -> None:
        super().__init__()
        if model not in RECURRENCES:
            raise ConfigError(f"unknown recurrent model {model!r}; known: {', '.join(RECURRENCES)}")
        self.input_size = check_value("input_size", input_size, Param(int, low=1))
        self.hidden_size = check_value("hidden_size", hidden_size, Param(int, low=1))
        self.num_layers = check_value("num_layers", num_layers, Param(int, low=1))
        self.dropout = check_value("dropout", dropout, Param(float, low=0.0, high=1.0))
        self.batch_first = check_value("batch_first", batch_first, Param(bool))
        self.model = model
        self.params = resolve_params(model, {**params, "hidden_size": self.hidden_size})
        if self.params.get("patch", 1) != 1:
            raise ConfigError("a layer reads one step per input row (torch.nn.RNN's convention); read windows "
                              "yourself (noisyrnn.models.windows.windows) and pass input_size = patch x channels")
        sizes = [self.input_size]
        layers = []
        for _ in range(self.num_layers):
            layers.append(Recurrence(**RECURRENCES[model](sizes[-1], self.params)))
            sizes.append(layers[-1].output_size)
        self.layers = nn.ModuleList(layers)
        self.state_size = layers[0].hidden_size
        self.output_size = layers[0].output_size

    @property
    def injects_noise(self) -> bool:
        return self.layers[0].injects_noise

    def reset_parameters(self) -> None:
        """Draw every weight afresh (each drift's own initialisation) and reset learned steps."""
        for layer in self.layers:
            layer.drift.reset_parameters()
            if isinstance(layer.step_size, nn.Parameter):
                with torch.no_grad():
                    layer.step_size.fill_(layer.initial_step)

    def orthogonal_parameters(self) -> list:
        """Parameters of orthogonal recurrent maps (expRNN), for an optimizer group of their own."""
        return [p for layer in self.layers for p in layer.orthogonal_parameters()]

    def init_state(self, batch: int) -> torch.Tensor:
        """h0 of zeros, (num_layers, batch, state_size)."""
        ref = next(self.parameters())
        return ref.new_zeros(self.num_layers, int(batch), self.state_size)

    def forward(self, input, h0: torch.Tensor | None = None, *, lengths=None, noise: bool | None = None,
                generator: torch.Generator | None = None) -> tuple:
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise InputError("a PackedSequence carries its lengths; do not pass lengths= too")
            x, lengths = pad_packed_sequence(input, batch_first=True)
        else:
            x = self._batch_major(input)
        batch, steps = x.shape[0], x.shape[1]
        lengths = check_lengths(lengths, batch, steps)
        h0 = self._check_h0(h0, batch, x)
        inject, generator = resolve_noise(noise, generator)
        mask = step_mask(lengths, batch, steps, x)
        last = []
        for i, layer in enumerate(self.layers):
            states = layer.states(x, None if h0 is None else h0[i], noise=inject, generator=generator,
                                  lengths=lengths)
            last.append(states[:, -1])  # frozen past each length: each sequence's own last state
            x = layer.drift.readout(states)
            if mask is not None:
                x = x * mask.transpose(0, 1).unsqueeze(-1)
            if self.dropout and i < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, self.training)
        h_n = torch.stack(last)
        if packed:
            return pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False), h_n
        return (x if self.batch_first else x.transpose(0, 1)), h_n

    def _batch_major(self, input) -> torch.Tensor:
        if not isinstance(input, torch.Tensor) or input.dim() != 3:
            shape = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
            layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            raise InputError(f"{type(self).__name__} expects input of shape {layout} or a PackedSequence, got {shape}")
        if input.shape[-1] != self.input_size:
            raise InputError(f"{type(self).__name__} expects {self.input_size} input features, got {input.shape[-1]}")
        return input if self.batch_first else input.transpose(0, 1)

    def _check_h0(self, h0, batch: int, x: torch.Tensor):
        if h0 is None:
            return None
        want = (self.num_layers, batch, self.state_size)
        if not isinstance(h0, torch.Tensor) or tuple(h0.shape) != want:
            got = tuple(h0.shape) if isinstance(h0, torch.Tensor) else type(h0).__name__
            raise InputError(f"h0 must have shape {want} (num_layers, batch, state_size), got {got}")
        return h0.to(x.dtype)

    def extra_repr(self) -> str:
        noise = self.params.get("noise", "none")
        text = (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, model={self.model!r}, "
                f"noise={noise!r}")
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout:g}"
        return text


class NRNN(NoisyRNN):
    """The paper's NRNN (eq 3 drift, noise in the hidden states; default: the research-code
    parametrisation, mult/add 0.03/0.06)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs) -> None:
        super().__init__(input_size, hidden_size, num_layers, model="nrnn", **kwargs)


class LipschitzRNN(NoisyRNN):
    """The Lipschitz RNN (eq 3 drift, deterministic by default; pass ``noise=`` to add noise)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs) -> None:
        super().__init__(input_size, hidden_size, num_layers, model="lipschitz", **kwargs)


class AntisymmetricRNN(NoisyRNN):
    """The antisymmetric RNN (``gated=True``: its gated variant)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, gated: bool = False,
                 **kwargs) -> None:
        super().__init__(input_size, hidden_size, num_layers,
                         model="antisymmetric_gated" if gated else "antisymmetric", **kwargs)


class CoRNN(NoisyRNN):
    """The coupled oscillatory RNN: state (y, z), output y."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs) -> None:
        super().__init__(input_size, hidden_size, num_layers, model="cornn", **kwargs)


class ExpRNN(NoisyRNN):
    """The exponential RNN (orthogonal recurrent map Q = expm(S), modReLU)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs) -> None:
        super().__init__(input_size, hidden_size, num_layers, model="exprnn", **kwargs)
