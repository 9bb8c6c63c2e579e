"""The sequence classifier of eq (14): encoder, recurrence (eq 5/6), linear decoder on h_M."""

from __future__ import annotations

import torch
from torch import nn

from ..dynamics import Drift
from ..errors import check_positive, check_sequences
from ..engine.workspace import Workspace
from ..engine.integrate import integrate
from ..noise import NoiseScheme


class RecurrentClassifier(nn.Module):
    """Logits V h_M + c of a continuous-time RNN integrated with step ``step``.

    Inputs are batch-first, shape (B, T, d_x). Noise is injected only when
    ``forward(x, noise=True)`` is called *and* the model has a noise scheme;
    ``model.train()``/``model.eval()`` never switch it. With ``learn_step=True`` the
    step is a learnable per-unit vector initialised to ``step`` (research-code solver).
    ``lengths`` (B,) gives each padded sequence's own length: the decoder then reads
    h_{L_b}, so padding never changes a prediction (:func:`noisyrnn.engine.integrate.step_mask`).
    The recurrence goes through :func:`noisyrnn.engine.integrate.integrate`, which runs the fused
    recurrence of :mod:`noisyrnn.engine.aten` for drifts that declare the eq (3) form (set
    ``fused = False`` for the generic loop; same results).
    """

    def __init__(
        self,
        drift: Drift,
        num_classes: int,
        step: float = 0.1,
        learn_step: bool = False,
        scheme: NoiseScheme | None = None,
    ) -> None:
        super().__init__()
        self.drift = drift
        self.hidden_size = drift.hidden_size
        self.input_size = drift.input_size
        self.num_classes = int(num_classes)
        self.scheme = scheme
        step = check_positive(step, "step")
        if learn_step:
            self.step = nn.Parameter(torch.full((1, self.hidden_size), step))
        else:
            self.register_buffer("step", torch.tensor(step))
        self.decoder = nn.Linear(drift.readout_size, self.num_classes)
        self.config: dict = {}
        self.fused = True
        self.workspace = Workspace()  # the fused path's reused buffers, owned by this model

    def orthogonal_parameters(self) -> list:
        """Parameters of an orthogonal recurrent map (expRNN), trained with their own lr."""
        get = getattr(self.drift, "orthogonal_parameters", None)
        return get() if get is not None else []

    @property
    def injects_noise(self) -> bool:
        return self.scheme is not None

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)

    def hidden_states(self, x: torch.Tensor, noise: bool = False, generator=None, lengths=None) -> torch.Tensor:
        """All states h_0..h_M, shape (B, M+1, d_h) (frozen after each sequence's length), on the
        cell engine where it applies (a gradient at every step)."""
        check_sequences(x, self.input_size)
        return integrate(
            self.drift, self.initial_state(x), self.drift.encoded(x), self.step,
            self.scheme, noise, generator, return_states=True, lengths=lengths,
            backend="auto" if self.fused else "loop", workspace=self.workspace,
        )

    def final_state(self, x: torch.Tensor, noise: bool = False, generator=None, lengths=None) -> torch.Tensor:
        check_sequences(x, self.input_size)
        return integrate(
            self.drift, self.initial_state(x), self.drift.encoded(x), self.step,
            self.scheme, noise, generator, lengths=lengths,
            backend="auto" if self.fused else "loop", workspace=self.workspace,
        )

    def forward(self, x: torch.Tensor, noise: bool = False, generator=None, lengths=None) -> torch.Tensor:
        h = self.final_state(x, noise=noise, generator=generator, lengths=lengths)
        return self.decoder(self.drift.readout(h))

    def extra_repr(self) -> str:
        kind = "learned per-unit" if isinstance(self.step, nn.Parameter) else "fixed"
        return f"num_classes={self.num_classes}, step={kind}"
