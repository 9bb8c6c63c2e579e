"""One recurrent layer (drift, step, noise scheme: eqs 5/6 over the input sequence) and the
models built on it: the sequence classifier of eq (14) (a linear decoder on h_M) and a
regressor (sequence to values, or one output per step)."""

from __future__ import annotations

import torch
from torch import nn

from ..dynamics import Drift
from ..errors import ConfigError, InputError, check_positive, check_sequences
from ..engine.workspace import Workspace
from ..engine.integrate import check_lengths, integrate, integrate_outputs, step_mask
from ..noise import NoiseScheme
from .windows import read_chunk, windows


class Recurrence(nn.Module):
    """A continuous-time RNN integrated with step ``step``: the recurrence of eq (5) (noise on)
    or eq (6) (noise off) over batch-first inputs (B, T, d_x), from h_0 = 0 or a given state.

    Noise is injected only when a call passes ``noise=True`` *and* the layer has a noise
    scheme; ``train()``/``eval()`` never switch it. The step size is ``step_size``: a buffer, or
    with ``learn_step=True`` a learnable per-unit vector initialised to ``step`` (research-code
    solver). ``lengths`` (B,)
    gives each padded sequence's own length: its state stays frozen past it
    (:func:`noisyrnn.engine.integrate.step_mask`). Every call goes through
    :func:`noisyrnn.engine.integrate.integrate`, on the C++ cell engine where it applies (set
    ``fused = False`` for the generic loop; same results). With ``patch = k`` the series is read
    in windows of k samples (:mod:`noisyrnn.models.windows`): the drift takes k d_x channels per
    step; the states are per window."""

    def __init__(self, drift: Drift, step: float = 0.1, learn_step: bool = False,
                 scheme: NoiseScheme | None = None, patch: int = 1) -> None:
        super().__init__()
        self.drift = drift
        self.hidden_size = drift.hidden_size  # the state the integrator carries (coRNN: (y, z), 2N)
        self.patch = int(patch)
        if self.patch < 1 or drift.input_size % self.patch:
            raise ConfigError(f"patch {patch} must be >= 1 and divide the drift's {drift.input_size} input channels")
        self.input_size = drift.input_size // self.patch  # channels per sample
        self.scheme = scheme
        self.initial_step = check_positive(step, "step")
        if learn_step:
            self.step_size = nn.Parameter(torch.full((1, self.hidden_size), self.initial_step))
        else:
            self.register_buffer("step_size", torch.tensor(self.initial_step))
        self.fused = True
        self.workspace = Workspace()  # the fast paths' reused buffers, owned by this layer

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        legacy = prefix + "step"  # checkpoints written before the step size was named step_size
        if legacy in state_dict and prefix + "step_size" not in state_dict:
            state_dict[prefix + "step_size"] = state_dict.pop(legacy)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def orthogonal_parameters(self) -> list:
        """Parameters of an orthogonal recurrent map (expRNN), trained with their own lr."""
        get = getattr(self.drift, "orthogonal_parameters", None)
        return get() if get is not None else []

    @property
    def injects_noise(self) -> bool:
        return self.scheme is not None

    @property
    def output_size(self) -> int:
        """Features per step of the output sequence (the part of the state a reader sees)."""
        return self.drift.readout_size

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)

    def _h0(self, x: torch.Tensor, h0) -> torch.Tensor:
        if h0 is None:
            return self.initial_state(x)
        if h0.shape != (x.shape[0], self.hidden_size):
            raise InputError(f"initial state must have shape ({x.shape[0]}, {self.hidden_size}) (batch, state "
                             f"size), got {tuple(h0.shape)}")
        return h0.to(x.dtype)

    def _backend(self) -> str:
        return "auto" if self.fused else "loop"

    def read(self, x: torch.Tensor, lengths=None):
        """(steps, lengths) the recurrence takes for samples ``x`` (B, T, d_x): checked, in windows
        of ``patch`` samples."""
        check_sequences(x, self.input_size)
        return windows(x, lengths, self.patch)

    def states(self, x: torch.Tensor, h0=None, noise: bool = False, generator=None, lengths=None) -> torch.Tensor:
        """The states h_1..h_M (B, M, d_h) from ``h0`` (default zeros); frozen past each
        sequence's length. On the cell engine every step's gradient flows back in one C++ loop."""
        x, lengths = self.read(x, lengths)
        states = integrate_outputs(self.drift, self._h0(x, h0), self.drift.encoded(x), self.step_size, self.scheme,
                                   noise, generator, lengths, self._backend(), self.workspace)
        return states.contiguous()  # batch-major in memory too (the engine writes step-major)

    def hidden_states(self, x: torch.Tensor, noise: bool = False, generator=None, lengths=None) -> torch.Tensor:
        """All states h_0..h_M, shape (B, M+1, d_h) (frozen after each sequence's length), on the
        cell engine where it applies (a gradient at every step)."""
        x, lengths = self.read(x, lengths)
        return integrate(self.drift, self.initial_state(x), self.drift.encoded(x), self.step_size, self.scheme, noise,
                         generator, return_states=True, lengths=lengths, backend=self._backend(),
                         workspace=self.workspace)

    def final_state(self, x: torch.Tensor, noise: bool = False, generator=None, lengths=None,
                    h0=None) -> torch.Tensor:
        """h_M (B, d_h): each sequence's own last state."""
        x, lengths = self.read(x, lengths)
        return self._final_state(x, noise, generator, lengths, h0)

    def _final_state(self, x, noise=False, generator=None, lengths=None, h0=None) -> torch.Tensor:
        """:meth:`final_state` of steps already read (:meth:`read`)."""
        return integrate(self.drift, self._h0(x, h0), self.drift.encoded(x), self.step_size, self.scheme, noise,
                         generator, lengths=lengths, backend=self._backend(), workspace=self.workspace)

    def extra_repr(self) -> str:
        kind = "learned per-unit" if isinstance(self.step_size, nn.Parameter) else "fixed"
        return (f"step={self.initial_step:g} ({kind}), noise={type(self.scheme).__name__ if self.scheme else None}"
                + (f", patch={self.patch}" if self.patch > 1 else ""))


class _Streaming:
    """``init_state`` / ``step`` of a model that reads its recurrence's last state: a live
    stream one sample or chunk at a time, noise off; any chunking of a sequence gives the
    same outputs as the whole pass. Without autograd, short chunks (up to ``FAST_CHUNK``
    steps) run the plain-operation step of :mod:`noisyrnn.models.inference` (a few small
    operations per sample, rebuilt when the weights change) instead of the engine's call."""

    FAST_CHUNK = 16

    @property
    def state_size(self) -> int:
        return self.hidden_size

    def init_state(self, batch: int, like: torch.Tensor | None = None) -> torch.Tensor:
        """The state before the first sample: zeros (batch, state size)."""
        ref = like if like is not None else next(self.parameters())
        return ref.new_zeros(int(batch), self.hidden_size)

    def step(self, x_chunk: torch.Tensor, state: torch.Tensor, lengths=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs after the chunk, new state) for ``x_chunk`` (B, t, d_x) or one sample (B, d_x);
        ``lengths`` (B,): the real steps of this chunk per sequence (0: the sequence has ended
        and keeps its state)."""
        if x_chunk.dim() == 2:
            x_chunk = x_chunk.unsqueeze(1)
        check_sequences(x_chunk, self.input_size)
        x_chunk, lengths, ended = read_chunk(x_chunk, lengths, self.patch)
        if self._fast_step_applies(x_chunk):
            graph = self._step_graph()
            if lengths is None and x_chunk.shape[1] == 1:  # one sample of every sequence
                h = graph.drift_step(state, torch.addmm(graph.enc_b, x_chunk[:, 0], graph.enc_wt))
            else:
                steps = torch.full((x_chunk.shape[0],), x_chunk.shape[1], dtype=torch.int64) if lengths is None \
                    else torch.where(ended, 0, lengths).to(torch.int64)  # an ended sequence takes no step
                h = graph.advance_steps(x_chunk, steps, state)
            return graph.decode(h), h
        h = self._final_state(x_chunk, lengths=lengths, h0=state)
        if ended is not None and bool(ended.any()):  # an ended sequence keeps its state
            h = torch.where(ended.to(h.device).unsqueeze(-1), state, h)
        return self.decode(h), h

    def _fast_step_applies(self, x: torch.Tensor) -> bool:
        from .inference import FORMS

        return (not torch.is_grad_enabled() and x.shape[1] <= self.FAST_CHUNK and x.device.type == "cpu"
                and x.dtype == torch.float32 and getattr(self.drift, "form", None) in FORMS and self.fused)

    def _step_graph(self):
        """The model's :class:`~noisyrnn.models.inference.InferenceGraph`, rebuilt when a weight changed."""
        from .inference import graph_of

        key = tuple((t.data_ptr(), t._version) for t in (*self.parameters(), *self.buffers()))
        cached = self.__dict__.get("_step_cache")
        if cached is None or cached[0] != key:
            cached = (key, graph_of(self).eval())
            self.__dict__["_step_cache"] = cached  # not a submodule: no state_dict entry
        return cached[1]


class RecurrentClassifier(_Streaming, Recurrence):
    """Logits V h_M + c (eq 14): a :class:`Recurrence` and a linear decoder on the part of each
    sequence's own last state the drift reads out."""

    def __init__(self, drift: Drift, num_classes: int, step: float = 0.1, learn_step: bool = False,
                 scheme: NoiseScheme | None = None, patch: int = 1) -> None:
        super().__init__(drift, step, learn_step, scheme, patch)
        self.num_classes = int(num_classes)
        self.decoder = nn.Linear(drift.readout_size, self.num_classes)
        self.config: dict = {}

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.drift.readout(h))

    def forward(self, x: torch.Tensor, noise: bool = False, generator=None, lengths=None) -> torch.Tensor:
        return self.decode(self.final_state(x, noise=noise, generator=generator, lengths=lengths))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, " + super().extra_repr()


class RecurrentRegressor(_Streaming, Recurrence):
    """Real-valued outputs from a :class:`Recurrence`: a linear head on each sequence's own
    last state, (B, outputs), or with ``per_step`` on every state, (B, T, outputs) (zero past a
    sequence's length)."""

    def __init__(self, drift: Drift, num_outputs: int, step: float = 0.1, learn_step: bool = False,
                 scheme: NoiseScheme | None = None, per_step: bool = False, patch: int = 1) -> None:
        super().__init__(drift, step, learn_step, scheme, patch)
        self.num_outputs = int(num_outputs)
        self.per_step = bool(per_step)
        if self.per_step and self.patch > 1:
            raise ConfigError(f"per-step outputs need one sample per step; patch = {patch} reads windows")
        self.decoder = nn.Linear(drift.readout_size, self.num_outputs)
        self.config: dict = {}

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.drift.readout(h))

    def forward(self, x: torch.Tensor, noise: bool = False, generator=None, lengths=None) -> torch.Tensor:
        if not self.per_step:
            return self.decode(self.final_state(x, noise=noise, generator=generator, lengths=lengths))
        out = self.decode(self.states(x, noise=noise, generator=generator, lengths=lengths))
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        mask = step_mask(lengths, x.shape[0], x.shape[1], out)
        return out if mask is None else out * mask.transpose(0, 1).unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"num_outputs={self.num_outputs}, per_step={self.per_step}, " + super().extra_repr()
