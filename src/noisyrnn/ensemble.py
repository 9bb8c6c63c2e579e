"""Seed/config batching: S independent models of one architecture trained in one pass.

:class:`Ensemble` holds S members of any model of the registry (every drift model, LSTM,
GRU) and runs them as one model with a leading member axis: ``forward`` takes (S, B, T, d_x)
(each member its own batch) or (B, T, d_x) and returns (S, B, C). Where the members' drift
declares a cell form (:mod:`noisyrnn.engine.cells`), their recurrences run in one C++ call,
one parallel task per member (on 2 cores, two single-threaded members beat one model split
across both threads: no synchronisation per step); on other devices the eq (3) form runs as
one batched recurrence (:mod:`noisyrnn.engine.aten`, ``bmm`` over the member axis); anything else
runs member by member. Each member keeps everything a separate run has: its own
initialisation (built with its own seed), its own shuffling and noise generators, its own
Adam state (Adam is elementwise, so one Adam over all members is S independent Adams), its
own model selection on the validation split. The loss is the sum of the members' mean
losses, so each member's gradient is exactly its own: results equal S separate runs up to
floating-point rounding (tested).

Members must share the architecture (model name, sizes, noise scheme kind, step kind) but may
differ in seeds and in noise levels, step sizes and drift constants.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError, check_sequences
from .engine.workspace import Workspace
from .dynamics import LinearInputs
from .engine.backend import allows, effective_backend
from .engine.integrate import step_sizes
from .models.recurrent import Recurrence
from .noise import Deterministic


def _architecture(model) -> tuple:
    cfg = getattr(model, "config", {}) or {}
    scheme = getattr(model, "scheme", None)
    step = getattr(model, "step_size", None)
    return (type(model), cfg.get("name"), model.input_size, getattr(model, "patch", 1), model.hidden_size,
            getattr(model, "num_classes", getattr(model, "num_outputs", None)),
            type(scheme), isinstance(step, nn.Parameter),
            None if step is None else tuple(step.shape))


def can_batch(models) -> bool:
    """True if the models share one architecture (see the module docstring)."""
    return bool(models) and all(_architecture(m) == _architecture(models[0]) for m in models)


class Ensemble(nn.Module):
    """S models of one architecture as one model with a member axis (module docstring)."""

    def __init__(self, models) -> None:
        super().__init__()
        models = list(models)
        if not models or not can_batch(models):
            raise ConfigError("an Ensemble needs models of one architecture (same model, sizes, noise scheme kind, "
                              "step kind); members may differ in seeds, noise levels and constants")
        self.models = nn.ModuleList(models)
        self.members = len(models)
        first = models[0]
        self.input_size, self.hidden_size = first.input_size, first.hidden_size
        self.num_classes = getattr(first, "num_classes", getattr(first, "num_outputs", None))
        self.workspace = Workspace()  # the fused paths' reused buffers, owned by this ensemble
        self.config = {"name": "ensemble", "members": [m.config for m in models]}

    @property
    def injects_noise(self) -> bool:
        return any(m.injects_noise for m in self.models)

    def orthogonal_parameters(self) -> list:
        return [p for m in self.models for p in getattr(m, "orthogonal_parameters", lambda: [])()]

    def forward(self, x: torch.Tensor, noise: bool = False, generators=None, lengths=None) -> torch.Tensor:
        S = self.members
        if x.dim() == 3:
            check_sequences(x, self.input_size)
            x = x.expand(S, *x.shape)
        elif x.dim() != 4 or x.shape[0] != S:
            raise ConfigError(f"ensemble input must be (S={S}, B, T, d_x) or (B, T, d_x), got {tuple(x.shape)}")
        else:
            check_sequences(x.reshape(-1, *x.shape[2:]), self.input_size)
        if lengths is not None and lengths.dim() == 1:
            lengths = lengths.expand(S, -1)
        gens = [None if generators is None else generators[s] for s in range(S)]
        lens = [None if lengths is None else lengths[s] for s in range(S)]
        first = self.models[0]
        if (isinstance(first, Recurrence) and hasattr(first, "decode") and not getattr(first, "per_step", False)
                and first.fused):
            steps, lens = self._read(x, lens)
            u = self._encoded(steps)
            h0 = x.new_zeros(S, x.shape[1], first.hidden_size)
            schemes = [m.scheme if (noise and m.scheme is not None) else Deterministic() for m in self.models]
            backend = effective_backend()
            hM = self._cells(u, h0, schemes, gens, lens) if allows(backend, "cells") else None
            if hM is None and allows(backend, "aten"):
                hM = self._batched_eq3(u, h0, schemes, gens, lens)
            if hM is not None:
                return torch.stack([m.decode(hM[s]) for s, m in enumerate(self.models)])
        return torch.stack([m(x[s], noise=noise, generator=gens[s], lengths=lens[s])
                            for s, m in enumerate(self.models)])

    def _read(self, x, lens):
        """The members' inputs (S, B, T, d_x) and lengths read in windows of ``patch`` samples
        (:mod:`noisyrnn.models.windows`; the members share it)."""
        from .models.windows import windows

        patch = self.models[0].patch
        if patch == 1:
            return x, lens
        read = [windows(x[s], lens[s], patch) for s in range(self.members)]
        return torch.stack([r[0] for r in read]), [r[1] for r in read]

    def _encoded(self, x):
        """The members' encoded inputs: LinearInputs with x (S, B, M, d_x) and the stacked U, b
        (projected in the cell engine's loop) where every member declares a linear encoder,
        else the stacked (S, B, M, d_u) drives."""
        encoded = [m.drift.encoded(x[s]) for s, m in enumerate(self.models)]
        if all(isinstance(e, LinearInputs) for e in encoded):  # one architecture: all with a bias, or none
            bias = None if encoded[0].bias is None else torch.stack([e.bias for e in encoded])
            return LinearInputs(x, torch.stack([e.weight for e in encoded]), bias)
        return torch.stack([e.materialise() if isinstance(e, LinearInputs) else e for e in encoded])

    def _cells(self, u, h0, schemes, gens, lens):
        """All members' h_M in one cell-engine call (noise drawn in the C++ loop), or None."""
        from .engine.cells import cell_members_final_state, cells_apply, member_inputs

        drifts = [m.drift for m in self.models]
        deltas = [step_sizes(m.step_size, u.shape[2], h0.shape[-1], h0) for m in self.models]
        first = member_inputs(u, 0)
        if not all(cells_apply(d, sc, h0[0], first, dt) for d, sc, dt in zip(drifts, schemes, deltas)):
            return None
        return cell_members_final_state(drifts, h0, u, deltas, schemes, gens, lens, self.workspace)

    def _batched_eq3(self, u, h0, schemes, gens, lens):
        """The eq (3) members as one batched recurrence with pre-drawn noise (the GPU path), or None."""
        from .engine.integrate import fused_applies, fused_members_final_state

        drifts = [m.drift for m in self.models]
        if not all(fused_applies(d, sc) for d, sc in zip(drifts, schemes)):
            return None
        if isinstance(u, LinearInputs):
            u = u.materialise()
        deltas = [step_sizes(m.step_size, u.shape[2], h0.shape[-1], h0) for m in self.models]
        return fused_members_final_state(drifts, h0, u, deltas, schemes, gens, lens, self.workspace)

    @torch.no_grad()
    def member(self, s: int, state: dict | None = None) -> nn.Module:
        """Member ``s`` as a stand-alone model (with weights from the ensemble ``state`` if given)."""
        model = self.models[s]
        if state is not None:
            prefix = f"models.{s}."
            model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        return model


LipschitzEnsemble = Ensemble  # the former name (it batched the eq (3) family only)
