"""Seed ensembles as one predictor (``n_members``): n models of one architecture, each trained
from its own seed (seed-batched on the engine, :func:`noisyrnn.training.api.train_model`), whose
class probabilities are averaged. The logits it returns are the log of the averaged
probabilities, so ``softmax`` gives the average, ``argmax`` the ensemble's class, and a
gradient-based attack attacks the ensemble; a regressor averages its members' outputs.
Inference runs the members together (:class:`noisyrnn.ensemble.Ensemble`: one C++ call for
every drift form)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

MEMBER_SEED_STRIDE = 100_003  # member i of a run with seed s is initialised and trained from seed s + i * stride


def member_seeds(seed: int, n_members: int) -> list[int]:
    """The seeds of a run's members: member 0 is the single-model run of ``seed`` itself."""
    if int(n_members) < 1:
        raise ConfigError(f"n_members must be >= 1, got {n_members}")
    return [int(seed) + i * MEMBER_SEED_STRIDE for i in range(int(n_members))]


class AveragedMembers(nn.Module):
    """The mean of ``members``' class probabilities (returned as log-probabilities), or of their
    outputs for regressors; streaming carries every member's state side by side."""

    def __init__(self, members) -> None:
        super().__init__()
        from ..ensemble import can_batch

        members = list(members)
        if len(members) < 2 or not can_batch(members):
            raise ConfigError("averaged members need at least two models of one architecture (same model, sizes, "
                              "noise scheme kind, step kind)")
        self.members = nn.ModuleList(members)
        first = members[0]
        self.input_size, self.hidden_size = first.input_size, first.hidden_size
        self.patch = getattr(first, "patch", 1)
        self.regression = hasattr(first, "num_outputs")
        if self.regression:
            self.num_outputs = first.num_outputs
        else:
            self.num_classes = first.num_classes
        self.config = {**first.config, "members": [m.config for m in members]}

    injects_noise = False  # an inference-time ensemble: its members were trained with their own noise

    @property
    def n_members(self) -> int:
        return len(self.members)

    def combine(self, outputs: torch.Tensor) -> torch.Tensor:
        """(S, B, C) member outputs -> the ensemble's: log of the mean probability, or the mean."""
        if self.regression:
            return outputs.mean(0)
        return torch.logsumexp(torch.log_softmax(outputs, dim=-1), dim=0) - torch.log(
            torch.tensor(float(outputs.shape[0]), dtype=outputs.dtype))

    def forward(self, x: torch.Tensor, noise: bool = False, generator=None, lengths=None) -> torch.Tensor:
        from ..ensemble import Ensemble

        if noise:
            raise ConfigError("averaged members predict with noise off; train members, not the average")
        together = self.__dict__.get("_together")
        if together is None:  # the members run together; not a submodule (no second state_dict entry)
            together = self.__dict__["_together"] = Ensemble(list(self.members))
        return self.combine(together(x, lengths=lengths))

    # streaming: the members' states side by side
    @property
    def state_size(self) -> int:
        return sum(m.state_size for m in self.members)

    def init_state(self, batch: int, like: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([m.init_state(batch, like) for m in self.members], dim=1)

    def step(self, x_chunk: torch.Tensor, state: torch.Tensor, lengths=None) -> tuple[torch.Tensor, torch.Tensor]:
        outs, states, at = [], [], 0
        for m in self.members:
            width = m.state_size
            out, new = m.step(x_chunk, state[:, at:at + width], lengths=lengths)
            outs.append(out)
            states.append(new)
            at += width
        return self.combine(torch.stack(outs)), torch.cat(states, dim=1)

    def extra_repr(self) -> str:
        return f"n_members={self.n_members}, averaging={'outputs' if self.regression else 'probabilities'}"
