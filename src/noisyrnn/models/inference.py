"""A recurrent classifier's noise-free inference path (eq 6, then eq 14's decoder) in plain
tensor operations: what ``noisyrnn export`` writes (TorchScript-compilable, a loop over time
with a dynamic length) and what streaming runs one sample at a time (a few small operations
per sample instead of the engine's call overhead). Each drift form's step is written here once,
as :mod:`noisyrnn.engine.cells` runs it; the tests check both against the engine."""

from __future__ import annotations

import torch
from torch import nn

FORMS = ("lipschitz", "tanh", "gated", "modrelu", "cornn")


class InferenceGraph(nn.Module):
    """The noise-free forward pass of a :class:`~noisyrnn.models.recurrent.RecurrentClassifier`
    (eq 6, then eq 14's decoder) in TorchScript-compilable operations. ``form`` as
    ``Drift.form``; ``weight`` (H, P), ``bias``, ``gamma``, ``eps`` as ``Drift.cell_operands()``;
    the encoder's U, b; the step sizes (1 or H of them); the decoder's V, c."""

    def __init__(self, form: str, weight, bias, gamma: float, eps: float, enc_w, enc_b, step, readout: int,
                 dec_w, dec_b, mean, std, patch: int = 1) -> None:
        super().__init__()
        self.form = form
        self.patch = int(patch)  # samples per step (models/windows.py)
        self.gamma, self.eps = float(gamma), float(eps)
        self.readout = int(readout)
        self.hidden = int(weight.shape[0])
        self.units = self.hidden // 2 if form == "cornn" else self.hidden
        self.normalize = bool((mean != 0).any() or (std != 1).any())
        for name, value in (("weight", weight), ("bias", bias if bias is not None else torch.zeros(0)),
                            ("enc_wt", enc_w.t()), ("enc_b", enc_b), ("step", step.reshape(1, -1)),
                            ("dec_wt", dec_w.t()), ("dec_b", dec_b), ("mean", mean), ("std", std)):
            self.register_buffer(name, value.detach().to(torch.float32).contiguous().clone())

    def drift_step(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """h + c * f(h, u_m): one Euler step of the declared form (c = the step sizes)."""
        p = torch.matmul(h, self.weight)
        n = self.units
        if self.form == "lipschitz":  # eq (3): alpha A h + tanh(W h + u)
            return h + self.step * (p[:, :n] + torch.tanh(p[:, n:] + u))
        if self.form == "tanh":  # antisymmetric RNN
            return h + self.step * torch.tanh(p + u)
        if self.form == "gated":  # gated antisymmetric RNN
            return h + self.step * (torch.sigmoid(p[:, n:] + u[:, n:]) * torch.tanh(p[:, :n] + u[:, :n]))
        if self.form == "modrelu":  # expRNN: modReLU(Q h + u, b) - h
            a = p + u
            return h + self.step * (torch.sign(a) * torch.relu(torch.abs(a) + self.bias) - h)
        # coRNN's IMEX step on (y, z): z' = z + dt F, y' = y + dt z'
        y, z = h[:, :n], h[:, n:]
        force = torch.tanh(p + u) - self.gamma * y - self.eps * z
        z_next = z + self.step * force
        return torch.cat([y + self.step * z_next, z_next], dim=1)

    def advance(self, x: torch.Tensor, lengths: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The state after each sequence's real samples of ``x`` (B, t, d), from ``state``."""
        if self.normalize:
            x = (x - self.mean) / self.std
        if self.patch > 1:  # windows of patch samples, as noisyrnn.models.windows reads them
            b, t, d = x.size(0), x.size(1), x.size(2)
            real = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)
            x = x * real.unsqueeze(2).to(x.dtype)
            pad = (self.patch - t % self.patch) % self.patch
            x = torch.cat([x, torch.zeros(b, pad, d, dtype=x.dtype)], dim=1)
            x = x.reshape(b, (t + pad) // self.patch, self.patch * d)
            lengths = torch.div(lengths + self.patch - 1, self.patch, rounding_mode="floor")
        return self.advance_steps(x, lengths, state)

    def advance_steps(self, x: torch.Tensor, lengths: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The state after each sequence's real steps of ``x`` (B, steps, patch d), normalised and
        read in windows already, from ``state``."""
        u = torch.addmm(self.enc_b, x.reshape(-1, x.size(2)), self.enc_wt).reshape(x.size(0), x.size(1), -1)
        h = state
        live = lengths.unsqueeze(1)
        for m in range(x.size(1)):
            h = torch.where(live > m, self.drift_step(h, u[:, m]), h)
        return h

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Eq (14)'s decoder on the state's read-out part."""
        return torch.addmm(self.dec_b, h[:, : self.readout], self.dec_wt)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor,
                state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.advance(x, lengths, state)
        logits = self.decode(h)
        return logits, torch.softmax(logits, dim=1), h


def graph_of(model, normalization=None) -> InferenceGraph:
    """The :class:`InferenceGraph` of a :class:`~noisyrnn.models.recurrent.RecurrentClassifier`
    (its current weights) with ``normalization`` (a ChannelNormalizer, or None) inside."""
    drift = model.drift
    with torch.no_grad():
        weight, bias, gamma, eps = drift.cell_operands()
        enc_w, enc_b = drift.input_projection()
        channels = model.input_size
        mean = torch.tensor(normalization.mean if normalization is not None else [0.0] * channels)
        std = torch.tensor(normalization.std if normalization is not None else [1.0] * channels)
        return InferenceGraph(drift.form, weight, bias, gamma, eps, enc_w, enc_b, model.step_size,
                              drift.readout_size, model.decoder.weight, model.decoder.bias, mean, std, model.patch)


class AveragedGraph(nn.Module):
    """A seed ensemble's inference path (:class:`~noisyrnn.models.averaged.AveragedMembers`):
    every member's :class:`InferenceGraph` on the same inputs, their probabilities averaged; the
    state is the members' states side by side."""

    def __init__(self, graphs) -> None:
        super().__init__()
        self.graphs = nn.ModuleList(graphs)
        self.hidden = int(sum(g.hidden for g in graphs))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor,
                state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        probs, states = [], []
        at = 0
        for g in self.graphs:
            h = g.advance(x, lengths, state[:, at:at + g.hidden])
            at += g.hidden
            states.append(h)
            probs.append(torch.softmax(g.decode(h), dim=1))
        mean = torch.stack(probs).mean(0)
        return torch.log(mean), mean, torch.cat(states, dim=1)

