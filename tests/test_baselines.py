"""Baselines: one update against a hand computation, each model's defining property, and training."""

import pytest
import torch

from noisyrnn import build_model
from noisyrnn.data.task import Split, Task
from noisyrnn.evaluation import evaluate
from noisyrnn.models.baselines import mod_relu
from noisyrnn.training import TrainConfig, train_model
from noisyrnn.training.config import make_optimizer




def test_antisymmetric_step_and_structure():
    torch.manual_seed(0)
    m = build_model("antisymmetric", 3, 2, hidden_size=6, gamma=0.05, step=0.2).double()
    W = m.drift.W.detach()
    assert torch.allclose(W + W.T, -2 * 0.05 * torch.eye(6, dtype=torch.float64))  # antisymmetric part only
    h0 = torch.randn(4, 6, dtype=torch.float64)
    x = torch.randn(4, 1, 3, dtype=torch.float64)
    from noisyrnn import integrate
    h1 = integrate(m.drift, h0, m.drift.encode(x), m.step_size)
    V, b = m.drift.encoder.weight.detach(), m.drift.encoder.bias.detach()
    C = m.drift.C.detach()
    expected = h0 + 0.2 * torch.tanh(h0 @ (C - C.T - 0.05 * torch.eye(6, dtype=torch.float64)).T + x[:, 0] @ V.T + b)
    assert torch.allclose(h1, expected)


def test_gated_antisymmetric_step():
    torch.manual_seed(1)
    m = build_model("antisymmetric_gated", 2, 2, hidden_size=5, gamma=0.1, step=0.3).double()
    from noisyrnn import integrate
    h0 = torch.randn(3, 5, dtype=torch.float64)
    x = torch.randn(3, 1, 2, dtype=torch.float64)
    h1 = integrate(m.drift, h0, m.drift.encode(x), m.step_size)
    Wm = m.drift.W.detach()
    V, b = m.drift.encoder.weight.detach(), m.drift.encoder.bias.detach()
    Vh, Vz, bh, bz = V[:5], V[5:], b[:5], b[5:]
    z = torch.sigmoid(h0 @ Wm.T + x[:, 0] @ Vz.T + bz)
    expected = h0 + 0.3 * z * torch.tanh(h0 @ Wm.T + x[:, 0] @ Vh.T + bh)
    assert torch.allclose(h1, expected)


def test_cornn_imex_update_order():
    torch.manual_seed(2)
    dt, gamma, eps = 0.1, 2.7, 4.7
    m = build_model("cornn", 2, 3, hidden_size=4, dt=dt, gamma=gamma, epsilon=eps).double()
    from noisyrnn import integrate
    y, z = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    x = torch.randn(3, 1, 2, dtype=torch.float64)
    h1 = integrate(m.drift, torch.cat([y, z], -1), m.drift.encode(x), m.step_size)
    R = m.drift.recurrent.weight.detach()
    W, Wz = R[:, :4], R[:, 4:]
    V, b = m.drift.encoder.weight.detach(), m.drift.encoder.bias.detach()
    # published order: z first, then y with the NEW z
    z_new = z + dt * (torch.tanh(y @ W.T + z @ Wz.T + x[:, 0] @ V.T + b) - gamma * y - eps * z)
    y_new = y + dt * z_new
    assert torch.allclose(h1, torch.cat([y_new, z_new], -1))
    # the old-z (explicit Euler) order differs, so the test can tell them apart
    assert not torch.allclose(y + dt * z, y_new)
    assert m.decoder.in_features == 4  # the decoder reads y only


def test_exprnn_step_and_orthogonality_after_training_steps():
    torch.manual_seed(3)
    m = build_model("exprnn", 2, 3, hidden_size=8).double()
    from noisyrnn import integrate
    h0 = torch.randn(4, 8, dtype=torch.float64)
    x = torch.randn(4, 1, 2, dtype=torch.float64)
    h1 = integrate(m.drift, h0, m.drift.encode(x), m.step_size)
    Q = m.drift.Q.detach()
    expected = mod_relu(x[:, 0] @ m.drift.encoder.weight.detach().T + m.drift.encoder.bias.detach() + h0 @ Q.T,
                        m.drift.bias.detach())
    assert torch.allclose(h1, expected)
    assert torch.allclose(mod_relu(torch.tensor([-2.0, 0.5, 3.0]), torch.tensor([1.0, -1.0, -1.0])),
                          torch.tensor([-3.0, 0.0, 2.0]))
    # several optimiser steps with large learning rates: Q stays orthogonal
    m = m.float()
    opt = make_optimizer(m, TrainConfig(optimizer="rmsprop", lr=1e-2, orthogonal_lr=1e-2))
    assert len(opt.param_groups) == 2
    before = m.drift.Q.detach().clone()
    xs, ys = torch.randn(16, 12, 2), torch.randint(0, 3, (16,))
    for _ in range(10):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(xs), ys).backward()
        opt.step()
    Q = m.drift.Q.detach()
    assert not torch.allclose(Q, before), "the orthogonal part must actually train"
    assert (Q.T @ Q - torch.eye(8)).abs().max() < 1e-5


def test_lstm_one_step_by_hand():
    torch.manual_seed(4)
    m = build_model("lstm", 3, 2, hidden_size=5)
    x = torch.randn(2, 1, 3)
    r = m.rnn
    gates = x[:, 0] @ r.weight_ih_l0.T + r.bias_ih_l0 + r.bias_hh_l0  # h0 = 0
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    assert torch.allclose(m(x), m.decoder(h), atol=1e-6)


def test_gru_one_step_by_hand():
    torch.manual_seed(5)
    m = build_model("gru", 3, 2, hidden_size=5)
    x = torch.randn(2, 1, 3)
    r = m.rnn
    gi = x[:, 0] @ r.weight_ih_l0.T + r.bias_ih_l0
    gh = r.bias_hh_l0.expand(2, -1)  # h0 = 0
    ir, iz, in_ = gi.chunk(3, -1)
    hr, hz, hn = gh.chunk(3, -1)
    rr, zz = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + rr * hn)
    h = (1 - zz) * n
    assert torch.allclose(m(x), m.decoder(h), atol=1e-6)


def tiny_task(n=96, T=12, seed=0):
    g = torch.Generator().manual_seed(seed)

    def make(k):
        y = torch.randint(0, 2, (k,), generator=g)
        x = 0.5 * torch.randn(k, T, 1, generator=g) + (2.0 * y - 1.0).view(-1, 1, 1)
        return Split(x, y)

    return Task("tiny", make(n), make(n), make(n), num_classes=2)


@pytest.mark.parametrize("name,params,lr", [
    ("antisymmetric", {"hidden_size": 16, "step": 0.1}, 0.01),
    ("antisymmetric_gated", {"hidden_size": 16, "step": 0.1}, 0.01),
    ("cornn", {"hidden_size": 16}, 0.01),
    ("exprnn", {"hidden_size": 16}, 0.003),
    ("lstm", {"hidden_size": 16}, 0.01),
    ("gru", {"hidden_size": 16}, 0.01),
])
def test_each_baseline_trains_on_a_tiny_task(name, params, lr):
    task = tiny_task()
    res = train_model(name, params, task, TrainConfig(epochs=8, batch_size=16, lr=lr, lr_milestones=[]),
                      progress=False)
    assert evaluate(res.model, task.test)["accuracy"] > 0.9
