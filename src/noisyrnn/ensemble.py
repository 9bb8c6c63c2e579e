"""Seed/config batching: S independent NRNN-family models trained in one pass.

The S members' parameters are stacked along a leading model axis and run as one batched
recurrence (:mod:`noisyrnn.fused`: ``bmm`` over the model axis on the GPU; on the CPU the
members' C++ loops run in parallel, one thread each), so the paper's 10-seed averages cost
one training run. Each member keeps everything a separate run has: its own
initialisation (built with its own seed), its own shuffling and noise generators, its own
Adam state (Adam is elementwise, so a stacked Adam is S independent Adams), and its own
model selection on the validation split. The loss is the sum of the members' mean losses,
so each member's gradient is exactly its own. Results equal S separate runs up to
floating-point rounding of the batched encoder/decoder products.

Members must share the architecture (hidden size, noise scheme kind, step kind) but may
differ in seeds and in noise levels / step sizes / Lipschitz constants.
"""

from __future__ import annotations

import torch
from torch import nn

from .dynamics import lipschitz_matrix
from .errors import ConfigError, check_sequences
from .fused import Workspace, lipschitz_recurrence
from .integrator import step_mask, step_sizes
from .models.recurrent import RecurrentClassifier
from .noise import Deterministic


def can_batch(models) -> bool:
    """True if the models are NRNN-family classifiers the ensemble can stack."""
    first = models[0]
    ok = all(
        isinstance(m, RecurrentClassifier) and getattr(m.drift, "form", None) == "lipschitz"
        and type(m.scheme) is type(first.scheme)
        and m.hidden_size == first.hidden_size and m.input_size == first.input_size
        and m.num_classes == first.num_classes
        and isinstance(m.step, nn.Parameter) == isinstance(first.step, nn.Parameter)
        for m in models
    )
    return ok and all(
        getattr(m.scheme, "affine_coefficients", None) is not None for m in models if m.scheme is not None
    )


class LipschitzEnsemble(nn.Module):
    """S stacked :class:`RecurrentClassifier` models with the drift of eq (3).

    ``forward(x, noise, generators)`` takes x of shape (S, B, T, d_x) (each member its own
    batch) or (B, T, d_x) (the same batch for all) and returns logits (S, B, C); ``lengths``
    of shape (S, B) or (B,) are the padded sequences' own lengths (as for one model).
    """

    def __init__(self, models) -> None:
        super().__init__()
        if not models or not can_batch(models):
            raise ConfigError("LipschitzEnsemble needs NRNN/Lipschitz models of one architecture")
        self.members = len(models)
        self.templates = models  # plain list: not registered, used to build/unstack members
        self.workspace = Workspace()  # the fused path's reused buffers, owned by this ensemble
        d0 = models[0].drift
        self.hidden_size, self.input_size, self.num_classes = d0.hidden_size, d0.input_size, models[0].num_classes
        stack = lambda get: nn.Parameter(torch.stack([get(m).detach().clone() for m in models]))  # noqa: E731
        self.B = stack(lambda m: m.drift.B)
        self.C = stack(lambda m: m.drift.C)
        self.enc_w = stack(lambda m: m.drift.encoder.weight)
        self.enc_b = stack(lambda m: m.drift.encoder.bias)
        self.dec_w = stack(lambda m: m.decoder.weight)
        self.dec_b = stack(lambda m: m.decoder.bias)
        steps = torch.stack([m.step.detach().clone().reshape(-1) for m in models])  # (S, 1) or (S, N)
        if isinstance(models[0].step, nn.Parameter):
            self.step = nn.Parameter(steps)
        else:
            self.register_buffer("step", steps)
        self.consts = [(m.drift.beta, m.drift.gamma_a, m.drift.gamma_w, m.drift.alpha) for m in models]
        self.schemes = [m.scheme for m in models]
        self.config = {"name": "ensemble", "members": [m.config for m in models]}

    @property
    def injects_noise(self) -> bool:
        return any(s is not None for s in self.schemes)

    def stacked_weight(self) -> torch.Tensor:
        ws = []
        for s, (beta, ga, gw, alpha) in enumerate(self.consts):
            A = lipschitz_matrix(self.B[s], beta, ga)
            W = lipschitz_matrix(self.C[s], beta, gw)
            ws.append(torch.cat([alpha * A.T, W.T], dim=1))
        return torch.stack(ws)

    def forward(self, x: torch.Tensor, noise: bool = False, generators=None, lengths=None) -> torch.Tensor:
        S = self.members
        if x.dim() == 3:
            check_sequences(x, self.input_size)
            x = x.expand(S, *x.shape)
        elif x.dim() != 4 or x.shape[0] != S:
            raise ConfigError(f"ensemble input must be (S={S}, B, T, d_x) or (B, T, d_x), got {tuple(x.shape)}")
        else:
            check_sequences(x.reshape(-1, *x.shape[2:]), self.input_size)
        batch, steps = x.shape[1], x.shape[2]
        hidden = self.hidden_size
        # U x + b for every model in one batched GEMM, batch-first: (S, B, M, N)
        u = torch.baddbmm(self.enc_b.unsqueeze(1), x.reshape(S, batch * steps, -1), self.enc_w.transpose(1, 2))
        u = u.view(S, batch, steps, hidden)
        h0 = u.new_zeros(S, batch, hidden)
        if lengths is not None and lengths.dim() == 1:
            lengths = lengths.expand(S, -1)
        schemes = [self.schemes[s] if (noise and self.schemes[s] is not None) else Deterministic() for s in range(S)]
        if self._cells_apply(schemes, u):
            hM = self._cells_final_state(u, h0, schemes, generators, lengths)
            return torch.baddbmm(self.dec_b.unsqueeze(1), hM, self.dec_w.transpose(1, 2))
        cs, ns = [], []
        for s in range(S):
            scheme = self.schemes[s] if (noise and self.schemes[s] is not None) else Deterministic()
            gen = None if generators is None else generators[s]
            dt = step_sizes(self.step[s].reshape(1, -1), steps, hidden, h0)
            c, n = scheme.affine_coefficients(dt, scheme.draw(steps, batch, hidden, h0[0], gen))
            mask = None if lengths is None else step_mask(lengths[s], batch, steps, h0)
            if mask is not None:  # frozen on padded steps, as in RecurrentClassifier
                c = c * mask.unsqueeze(-1)
                n = None if n is None else n * mask.unsqueeze(-1)
            cs.append(c)
            ns.append(n)
        # (M, S, B, N) views of model-major stacks: each member's slice is contiguous for the C++ loops
        common = torch.broadcast_shapes(*(c.shape for c in cs))  # masks may differ between members
        c = torch.stack([v.expand(common) for v in cs]).transpose(0, 1)
        if any(n is not None for n in ns):
            n = torch.stack([u.new_zeros(steps, batch, hidden) if v is None else v for v in ns]).transpose(0, 1)
        else:
            n = None
        hM = lipschitz_recurrence(u, h0, self.stacked_weight(), c, n, self.workspace)  # (S, B, N)
        return torch.baddbmm(self.dec_b.unsqueeze(1), hM, self.dec_w.transpose(1, 2))

    def _cells_apply(self, schemes, u) -> bool:
        """The members run in parallel through the cell engine (noise drawn in the C++ loop)
        where it applies (CPU float32, schemes that draw in the loop); else the batched
        recurrence of :mod:`noisyrnn.fused` with pre-drawn noise."""
        from .fused_cells import cells_apply

        d0 = self.templates[0].drift
        dt = self.step[0].reshape(1, -1)
        return all(cells_apply(d0, sc, u[0, :, 0], u[0], dt) for sc in schemes)

    def _cells_final_state(self, u, h0, schemes, generators, lengths):
        from .fused_cells import FORMS, CellSpec, cell_recurrence
        from .noise import sqrt_step

        S = self.members
        noise = tuple(sc.in_loop(None if generators is None else generators[s]) for s, sc in enumerate(schemes))
        if any(n.kind == 2 for n in noise):
            sqrt_step(self.step)
        none = torch.empty(0, dtype=torch.int64)
        lens = tuple(none if lengths is None else lengths[s].to(torch.int64).contiguous() for s in range(S))
        spec = CellSpec(FORMS["lipschitz"], noise, (0.0,) * S, (0.0,) * S, (0.0,) * S, lens)
        return cell_recurrence(u, h0, self.stacked_weight(), self.step, u.new_empty(S, 0), spec, self.workspace)

    @torch.no_grad()
    def member(self, s: int, state: dict | None = None) -> RecurrentClassifier:
        """Member ``s`` as a stand-alone model (with weights from ``state`` if given)."""
        sd = state if state is not None else self.state_dict()
        model = self.templates[s]
        model.drift.B.copy_(sd["B"][s])
        model.drift.C.copy_(sd["C"][s])
        model.drift.encoder.weight.copy_(sd["enc_w"][s])
        model.drift.encoder.bias.copy_(sd["enc_b"][s])
        model.decoder.weight.copy_(sd["dec_w"][s])
        model.decoder.bias.copy_(sd["dec_b"][s])
        model.step.copy_(sd["step"][s].reshape(model.step.shape))
        return model.to(self.B.device)
