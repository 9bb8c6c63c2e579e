"""The paper's comparison models as drifts, so they run in the same recurrence loop.

Each published update is written as one explicit Euler step ``h + dt * f(h, x)`` of a drift
``f`` chosen so that the step *is* the published update:

* Antisymmetric RNN (Chang et al. 2019): ``h + eps*tanh((W - W^T - gamma I) h + V x + b)``;
  the gated variant multiplies by ``sigmoid((W - W^T - gamma I) h + V_z x + b_z)``.
* coRNN (Rusch & Mishra 2021), state (y, z), IMEX order
  ``z' = z + dt*(tanh(W y + Wz z + V x + b) - gamma*y - eps*z)``, ``y' = y + dt*z'``:
  the drift is ``(z + dt*F, F)``, so ``y + dt*(z + dt*F) = y + dt*z'``.
* expRNN (Lezcano-Casado & Martinez-Rubio 2019): ``h' = modReLU(W_in x + Q h)`` with
  ``Q = expm(S)`` orthogonal; as an Euler step with dt = 1 its drift is ``h' - h``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrizations

from ..dynamics import LinearEncoderDrift
from ..errors import check_positive


def antisymmetric_matrix(base: torch.Tensor, gamma: float) -> torch.Tensor:
    """W - W^T - gamma*I."""
    eye = torch.eye(base.shape[0], dtype=base.dtype, device=base.device)
    return base - base.T - gamma * eye


class AntisymmetricDrift(LinearEncoderDrift):
    """f(h, x) = tanh((W - W^T - gamma I) h + V x + b), gated: times sigmoid(... V_z x + b_z)."""

    def __init__(self, input_size: int, hidden_size: int, gamma: float = 0.01, gated: bool = False,
                 init_std: float = 1.0) -> None:
        super().__init__()
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.gamma = check_positive(gamma, "gamma", allow_zero=True)
        self.gated = bool(gated)
        self.form = "gated" if self.gated else "tanh"  # the cell engine's forms (noisyrnn.engine.cells)
        self.init_std = check_positive(init_std, "init_std", allow_zero=True)
        self.encoder = nn.Linear(self.input_size, self.hidden_size * (2 if gated else 1))
        self.C = nn.Parameter(torch.empty(self.hidden_size, self.hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Chang et al.: recurrent weights N(0, sigma^2 / N)
        nn.init.normal_(self.C, 0.0, self.init_std / math.sqrt(self.hidden_size))
        self.encoder.reset_parameters()

    @property
    def W(self) -> torch.Tensor:
        return antisymmetric_matrix(self.C, self.gamma)

    def cell_operands(self):
        wt = self.W.T  # gated: both products share W h, so [W^T | W^T] gives (W h, W h) in one GEMM
        return (torch.cat([wt, wt], dim=1) if self.gated else wt), None, 0.0, 0.0

    def step_function(self):
        wt = self.W.T
        return lambda h, u: self.forward(h, u, wt)

    def forward(self, h, u, wt=None):
        wh = h @ (self.W.T if wt is None else wt)
        if not self.gated:
            return torch.tanh(wh + u)
        u_h, u_z = u.split(self.hidden_size, dim=-1)
        return torch.sigmoid(wh + u_z) * torch.tanh(wh + u_h)

    def extra_repr(self):
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}, gamma={self.gamma}, gated={self.gated}"


class CoRNNDrift(LinearEncoderDrift):
    """coRNN's IMEX update as an Euler step of a dt-dependent drift on h = (y, z)."""

    def __init__(self, input_size: int, hidden_size: int, dt: float = 0.042, gamma: float = 2.7,
                 epsilon: float = 4.7) -> None:
        super().__init__()
        self.input_size, self.units = int(input_size), int(hidden_size)
        self.hidden_size = 2 * self.units  # the integrator's state is (y, z)
        self.dt = check_positive(dt, "dt")
        self.gamma = check_positive(gamma, "gamma", allow_zero=True)
        self.epsilon = check_positive(epsilon, "epsilon", allow_zero=True)
        self.encoder = nn.Linear(self.input_size, self.units)  # V x + b
        self.recurrent = nn.Linear(2 * self.units, self.units, bias=False)  # [W | Wz] (y, z)

    form = "cornn"

    def reset_parameters(self) -> None:
        """Draw the weights afresh, as construction does (PyTorch's Linear initialisation)."""
        self.encoder.reset_parameters()
        self.recurrent.reset_parameters()

    def cell_operands(self):
        return self.recurrent.weight.T, None, self.gamma, self.epsilon

    @property
    def readout_size(self) -> int:
        return self.units

    def readout(self, h):
        return h[..., : self.units]

    def forward(self, h, u):
        y, z = h.split(self.units, dim=-1)
        F = torch.tanh(self.recurrent(h) + u) - self.gamma * y - self.epsilon * z
        return torch.cat([z + self.dt * F, F], dim=-1)

    @property
    def noise_size(self) -> int:
        return self.units

    def noisy_step(self, scheme, h, f, dt, u, noise_m):
        """Noise enters the velocity only. coRNN discretises the second-order ODE
        y'' = F(y, y', x); as an SDE (section 3) the natural noise is a random force,
        dz = F dt + sigma dW, dy = z dt (underdamped Langevin form): y is the integral of z,
        so it stays differentiable in time and gets no noise of its own. In the IMEX order
        the scheme's step acts on z, and y integrates the new, noisy z: y' = y + dt z'."""
        y, z = h.split(self.units, dim=-1)
        F = f[..., self.units:]
        dt_y, dt_z = (dt, dt) if dt.shape[-1] == 1 else dt.split(self.units, dim=-1)
        z_next = scheme.step(z, F, dt_z, u, noise_m)
        return torch.cat([y + dt_y * z_next, z_next], dim=-1)

    def extra_repr(self):
        return f"units={self.units}, dt={self.dt}, gamma={self.gamma}, epsilon={self.epsilon}"


def mod_relu(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """modReLU(z) = sign(z) * relu(|z| + b) (real case)."""
    return torch.sign(z) * torch.relu(z.abs() + bias)


def henaff_skew(n: int, generator=None) -> torch.Tensor:
    """Henaff et al.'s init: block-diagonal skew-symmetric S, 2x2 blocks [[0, s], [-s, 0]], s ~ U(-pi, pi)."""
    S = torch.zeros(n, n)
    s = (torch.rand(n // 2, generator=generator) * 2 - 1) * math.pi
    idx = torch.arange(0, n - 1, 2)
    S[idx, idx + 1] = s
    S[idx + 1, idx] = -s
    return S


class ExpRNNDrift(LinearEncoderDrift):
    """h' = modReLU(W_in x + b_in + Q h, b), Q = expm(S) kept orthogonal by
    ``torch.nn.utils.parametrizations.orthogonal`` with the matrix-exponential map."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.encoder = nn.Linear(self.input_size, self.hidden_size)
        nn.init.kaiming_normal_(self.encoder.weight, nonlinearity="relu")
        self.recurrent = nn.Linear(self.hidden_size, self.hidden_size, bias=False)
        with torch.no_grad():
            self.recurrent.weight.copy_(torch.matrix_exp(henaff_skew(self.hidden_size)))
        parametrizations.orthogonal(self.recurrent, orthogonal_map="matrix_exp")
        self.bias = nn.Parameter(torch.empty(self.hidden_size).uniform_(-0.01, 0.01))

    form = "modrelu"

    def reset_parameters(self) -> None:
        """Draw the weights afresh, as construction does (Kaiming encoder, Henaff's orthogonal
        Q = expm(S), modReLU bias U(-0.01, 0.01))."""
        self.encoder.reset_parameters()
        nn.init.kaiming_normal_(self.encoder.weight, nonlinearity="relu")
        with torch.no_grad():
            self.recurrent.weight = torch.matrix_exp(henaff_skew(self.hidden_size))
            self.bias.uniform_(-0.01, 0.01)

    def cell_operands(self):
        return self.Q.T, self.bias, 0.0, 0.0

    @property
    def Q(self) -> torch.Tensor:
        return self.recurrent.weight

    def orthogonal_parameters(self):
        """The parameters of the orthogonal map (trained with their own learning rate)."""
        return list(self.recurrent.parametrizations.weight.parameters())

    def step_function(self):
        qt = self.Q.T
        return lambda h, u: mod_relu(u + h @ qt, self.bias) - h

    def forward(self, h, u):
        return mod_relu(u + self.recurrent(h), self.bias) - h

    def extra_repr(self):
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}"


class TorchRNNClassifier(nn.Module):
    """torch.nn.LSTM or GRU (batch-first) with a linear decoder on the last hidden state;
    with ``lengths`` the sequences are packed (``pack_padded_sequence``), so the decoder reads
    each sequence's own last state. ``patch = k``: the series is read in windows of k samples
    (:mod:`noisyrnn.models.windows`)."""

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_classes: int, patch: int = 1) -> None:
        super().__init__()
        self.kind = kind
        self.input_size, self.hidden_size, self.num_classes = int(input_size), int(hidden_size), int(num_classes)
        self.patch = int(patch)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.rnn = rnn_cls(self.input_size * self.patch, self.hidden_size, batch_first=True)
        self.decoder = nn.Linear(self.hidden_size, self.num_classes)
        self.config: dict = {}

    injects_noise = False

    @property
    def state_size(self) -> int:
        """The streaming state's width: [h | c] for the LSTM, h for the GRU."""
        return 2 * self.hidden_size if self.kind == "lstm" else self.hidden_size

    def init_state(self, batch: int, like: torch.Tensor | None = None) -> torch.Tensor:
        """The state before the first sample: zeros (batch, state_size)."""
        ref = like if like is not None else self.decoder.weight
        return ref.new_zeros(int(batch), self.state_size)

    def step(self, x_chunk: torch.Tensor, state: torch.Tensor, lengths=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits after the chunk, new state) for ``x_chunk`` (B, t, d) or one sample (B, d);
        ``lengths`` (B,): each sequence's real steps in this chunk (0: it has ended; its state stays)."""
        from ..errors import check_sequences
        from .windows import read_chunk

        if x_chunk.dim() == 2:
            x_chunk = x_chunk.unsqueeze(1)
        check_sequences(x_chunk, self.input_size)
        x_chunk, lengths, ended = read_chunk(x_chunk, lengths, self.patch)
        t = x_chunk.shape[1]
        H = self.hidden_size
        carried = (state[:, :H].unsqueeze(0).contiguous(), state[:, H:].unsqueeze(0).contiguous()) \
            if self.kind == "lstm" else state.unsqueeze(0).contiguous()
        if lengths is None or int(lengths.min()) == t:
            _, new = self.rnn(x_chunk, carried)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x_chunk, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, new = self.rnn(packed, carried)
        new_state = torch.cat([new[0][0], new[1][0]], dim=-1) if self.kind == "lstm" else new[0]
        if ended is not None and bool(ended.any()):
            new_state = torch.where(ended.unsqueeze(-1), state, new_state)
        return self.decoder(new_state[:, :H]), new_state

    def forward(self, x, noise: bool = False, generator=None, lengths=None):
        from ..errors import check_sequences
        from ..engine.integrate import check_lengths

        from .windows import windows

        check_sequences(x, self.input_size)
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        x, lengths = windows(x, lengths, self.patch)
        if lengths is None or int(lengths.min()) == x.shape[1]:
            out, _ = self.rnn(x)
            return self.decoder(out[:, -1])
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers, B, H), original order
        return self.decoder(h_n[-1])
