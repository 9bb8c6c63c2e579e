"""A plain eager NRNN loop written the way the authors' research code writes it.

Used as an independent reference by the tests (our fused recurrence must match it) and as
baseline (a) of ``benchmarks/bench_recurrence.py``: the encoder inside the loop, separate
``h @ A`` and ``h @ W`` products, and noise drawn per step:
``h <- h + d * m * (h A + tanh(h W + E x_t)) + add * xi``, m = mult*U(0,1) + 1 - mult.
Note the research code multiplies row vectors from the left (h A); noisyrnn follows the
paper's A h, i.e. h A^T, so :meth:`load_from` transposes.
"""

from __future__ import annotations

import torch
from torch import nn

from noisyrnn.dynamics import lipschitz_matrix


class ResearchStyleNRNN(nn.Module):
    def __init__(self, input_size, hidden_size, num_classes, step=0.01, mult_noise=0.02, add_noise=0.02,
                 beta=0.75, gamma_a=0.001, gamma_w=0.001, init_std=0.1):
        super().__init__()
        N = hidden_size
        self.E = nn.Linear(input_size, N)
        self.D = nn.Linear(N, num_classes)
        self.B = nn.Parameter(torch.randn(N, N) * init_std / N)
        self.C = nn.Parameter(torch.randn(N, N) * init_std / N)
        self.d = nn.Parameter(torch.full((N,), float(step)))
        self.beta, self.gamma_a, self.gamma_w = beta, gamma_a, gamma_w
        self.mult, self.add = mult_noise, add_noise

    @torch.no_grad()
    def load_from(self, model) -> "ResearchStyleNRNN":
        """Copy the weights of a noisyrnn ``nrnn``/``lipschitz`` model (A h = h A^T)."""
        self.E.load_state_dict(model.drift.encoder.state_dict())
        self.D.load_state_dict(model.decoder.state_dict())
        self.B.copy_(model.drift.B.T)
        self.C.copy_(model.drift.C.T)
        self.d.copy_(model.step_size.expand(1, self.d.shape[0])[0])
        return self

    def forward(self, x, noise: bool = False):
        A = lipschitz_matrix(self.B, self.beta, self.gamma_a)
        W = lipschitz_matrix(self.C, self.beta, self.gamma_w)
        h = x.new_zeros(x.shape[0], self.B.shape[0])
        for t in range(x.shape[1]):
            z = h @ A + torch.tanh(h @ W + self.E(x[:, t]))
            if noise:
                m = self.mult * torch.rand_like(h) + (1 - self.mult)
                h = h + self.d * m * z + self.add * torch.randn_like(h)
            else:
                h = h + self.d * z
        return self.D(h)
