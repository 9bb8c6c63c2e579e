"""The recurrence against hand computations, closed forms and finite differences."""

import math

import pytest
import torch

from noisyrnn import (
    Deterministic, EulerMaruyama, LipschitzDrift, MatrixDiffusion, PaperDiffusion, ResearchCodeNoise,
    build_model, integrate,
)
from noisyrnn.engine import philox
from noisyrnn.dynamics import Drift, lipschitz_matrix
from noisyrnn.errors import InputError


def small_drift(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    drift = LipschitzDrift(input_size=2, hidden_size=4, init_std=4.0).to(dtype)
    return drift


def test_lipschitz_matrix_closed_form():
    b = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    # beta=0.75: 0.75*(B-B^T) + 0.25*(B+B^T) - 0.5 I
    expected = torch.tensor([[0.25 * 2 - 0.5, 0.75 * -1 + 0.25 * 5], [0.75 * 1 + 0.25 * 5, 0.25 * 8 - 0.5]])
    assert torch.allclose(lipschitz_matrix(b, 0.75, 0.5), expected)


def test_one_euler_maruyama_step_by_hand():
    drift = small_drift()
    h0 = torch.randn(3, 4, dtype=torch.float64)
    x = torch.randn(3, 1, 2, dtype=torch.float64)
    eps, s1, s2, dt = 0.7, 0.3, 0.5, 0.04
    scheme = EulerMaruyama(PaperDiffusion(eps, s1, s2))
    gen = torch.Generator().manual_seed(5)
    h1 = integrate(drift, h0, drift.encode(x), dt, scheme, noise=True, generator=gen)
    xi = philox.randn((1, 3, 4), torch.Generator().manual_seed(5), dtype=torch.float64)[0]  # the scheme's draw
    # by hand, eq (3)-(5): f = A h + tanh(W h + U x + b); sigma = eps (s1 I + s2 diag f)
    A, W = drift.A.detach(), drift.W.detach()
    U, b = drift.encoder.weight.detach(), drift.encoder.bias.detach()
    f = h0 @ A.T + torch.tanh(h0 @ W.T + x[:, 0] @ U.T + b)
    expected = h0 + f * dt + eps * (s1 + s2 * f) * xi * math.sqrt(dt)
    assert torch.allclose(h1, expected, atol=1e-12)


def test_noise_off_is_exactly_the_deterministic_recurrence():
    torch.manual_seed(1)
    model = build_model("nrnn", 3, 2, hidden_size=8, noise="sde", sigma1=1.0, sigma2=1.0, learn_step=False,
                        step=0.1, init_std=3.0).double()
    x = torch.randn(5, 12, 3, dtype=torch.float64)
    out = model.final_state(x, noise=False)
    # eq (6) written out
    d = model.drift
    h = torch.zeros(5, 8, dtype=torch.float64)
    dt = model.step_size  # the stored step (0.1 rounded to float32 at construction)
    for m in range(12):
        h = h + dt * (h @ d.A.T + torch.tanh(h @ d.W.T + d.encoder(x[:, m])))
    assert torch.allclose(out, h, atol=1e-14, rtol=1e-12)  # same arithmetic up to GEMM rounding
    # and noise on with a noise-free scheme is the same too
    lip = build_model("lipschitz", 3, 2, hidden_size=8, step=0.1).double()
    lip.load_state_dict({k: v for k, v in model.state_dict().items()}, strict=True)
    assert torch.equal(lip.final_state(x, noise=True), out)


def test_noise_actually_injected_only_when_asked():
    torch.manual_seed(0)
    model = build_model("nrnn", 1, 2, hidden_size=8, mult_noise=0.1, add_noise=0.1)
    x = torch.randn(4, 10, 1)
    model.train()
    a, b = model(x), model(x)
    assert torch.equal(a, b), "training mode alone must not inject noise"
    g = torch.Generator().manual_seed(0)
    noisy = model(x, noise=True, generator=g)
    assert not torch.allclose(noisy, a)
    again = model(x, noise=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again), "noise must be reproducible from the generator"


def test_research_scheme_with_zero_noise_is_euler_with_learned_step():
    torch.manual_seed(2)
    # a configuration refuses zero noise (it injects nothing); the scheme itself is still exact
    model = build_model("lipschitz", 2, 3, hidden_size=6, learn_step=True, step=0.05)
    model.scheme = ResearchCodeNoise(0.0, 0.0)
    with torch.no_grad():
        model.step_size.copy_(torch.linspace(0.01, 0.1, 6).unsqueeze(0))
    x = torch.randn(4, 9, 2)
    d = model.drift
    h = torch.zeros(4, 6)
    for m in range(9):
        h = h + model.step_size * (h @ d.A.T + torch.tanh(h @ d.W.T + d.encoder(x[:, m])))
    got = model.final_state(x, noise=True, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(got, h, atol=1e-6)


def test_non_uniform_step_sizes_follow_the_partition():
    drift = small_drift()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    deltas = torch.tensor([0.1, 0.02, 0.3, 0.05, 0.2], dtype=torch.float64)
    h0 = torch.zeros(2, 4, dtype=torch.float64)
    states = integrate(drift, h0, drift.encode(x), deltas, return_states=True)
    h = h0
    for m in range(5):
        h = h + deltas[m] * drift(h, drift.encode(x)[:, m])
        assert torch.allclose(states[:, m + 1], h)
    assert states.shape == (2, 6, 4)


def test_bad_step_sizes_are_rejected():
    drift = small_drift()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    h0 = torch.zeros(2, 4, dtype=torch.float64)
    with pytest.raises(InputError, match="length M=5"):
        integrate(drift, h0, drift.encode(x), torch.ones(4, dtype=torch.float64))
    with pytest.raises(InputError, match="positive"):
        integrate(drift, h0, drift.encode(x), -0.1)


def _increments(scheme, f_value, dt, n=200_000, hidden=3):
    """Noise part of one step: h1 - h0 - dt*f for a constant drift f."""

    class ConstantDrift(Drift):
        hidden_size = hidden

        def forward(self, h, u):
            return torch.full_like(h, f_value)

    h0 = torch.zeros(n, hidden, dtype=torch.float64)
    u = torch.zeros(n, 1, hidden, dtype=torch.float64)
    h1 = integrate(ConstantDrift(), h0, u, dt, scheme, noise=True, generator=torch.Generator().manual_seed(3))
    return h1 - h0


@pytest.mark.parametrize("sigma1,sigma2", [(0.8, 0.0), (0.0, 1.5), (0.4, 0.9)])
def test_injected_increments_have_sde_mean_and_variance(sigma1, sigma2):
    """Eq (4)-(5): increment - f*dt ~ N(0, (eps(s1 + s2 f))^2 dt); 6-sigma statistical tolerance."""
    eps, dt, f, n = 0.5, 0.01, 2.0, 200_000
    inc = _increments(EulerMaruyama(PaperDiffusion(eps, sigma1, sigma2)), f, dt, n).flatten() - f * dt
    std = eps * (sigma1 + sigma2 * f) * math.sqrt(dt)
    N = inc.numel()
    assert abs(inc.mean().item()) < 6 * std / math.sqrt(N)
    # var of the sample variance of a Gaussian: 2 sigma^4 / (N - 1)
    assert abs(inc.var().item() - std**2) < 6 * math.sqrt(2 / (N - 1)) * std**2


def test_research_scheme_increment_moments():
    """m ~ mult*U(0,1) + 1 - mult: mean dt*f*(1 - mult/2), variance (dt f)^2 mult^2/12 + add^2."""
    mult, add, dt, f = 0.3, 0.05, 0.1, 2.0
    inc = _increments(ResearchCodeNoise(mult, add), f, dt).flatten()
    N = inc.numel()
    mean = dt * f * (1 - mult / 2)
    var = (dt * f) ** 2 * mult**2 / 12 + add**2
    assert abs(inc.mean().item() - mean) < 6 * math.sqrt(var / N)
    assert abs(inc.var().item() - var) < 0.02 * var


def test_general_noise_covariance_is_g_g_transpose_dt():
    G = torch.tensor([[1.0, 0.5], [0.0, 2.0], [0.3, -1.0]], dtype=torch.float64)
    dt = 0.05
    inc = _increments(EulerMaruyama(MatrixDiffusion(G)), 0.0, dt, n=200_000, hidden=3)
    cov = torch.cov(inc.T)
    assert torch.allclose(cov, G @ G.T * dt, atol=0.02 * float((G @ G.T * dt).abs().max()))


def test_euler_maruyama_matches_ornstein_uhlenbeck_moments():
    """dh = a h dt + b dB: E h_T = h0 e^{aT}, Var h_T = b^2 (e^{2aT} - 1) / (2a) (weak order 1)."""

    class Linear(Drift):
        hidden_size = 1

        def forward(self, h, u):
            return -1.5 * h

    a, b, T, M, n = -1.5, 0.7, 1.0, 400, 40_000
    h0 = torch.ones(n, 1, dtype=torch.float64)
    u = torch.zeros(n, M, 1, dtype=torch.float64)
    scheme = EulerMaruyama(MatrixDiffusion(torch.tensor([[b]], dtype=torch.float64)))
    hT = integrate(Linear(), h0, u, T / M, scheme, noise=True, generator=torch.Generator().manual_seed(0))
    mean, var = math.exp(a * T), b**2 * (math.exp(2 * a * T) - 1) / (2 * a)
    assert abs(hT.mean().item() - mean) < 6 * math.sqrt(var / n) + 2 * T / M
    assert abs(hT.var().item() - var) < 6 * math.sqrt(2 / n) * var + 2 * T / M


def test_gradients_match_finite_differences_float64():
    torch.manual_seed(0)
    model = build_model("nrnn", 2, 3, hidden_size=5, mult_noise=0.1, add_noise=0.1, init_std=2.0).double()
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    y = torch.tensor([0, 2, 1])
    params = list(model.parameters())

    def loss_of(*ps, noise=False):
        sd = {n: p for (n, _), p in zip(model.named_parameters(), ps)}
        out = torch.func.functional_call(
            model, sd, (x,), {"noise": noise, "generator": torch.Generator().manual_seed(4) if noise else None}
        )
        return torch.nn.functional.cross_entropy(out, y)

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in params)
    assert torch.autograd.gradcheck(lambda *ps: loss_of(*ps), inputs, eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda *ps: loss_of(*ps, noise=True), inputs, eps=1e-6, atol=1e-6)


def test_deterministic_scheme_ignores_noise_flag():
    drift = small_drift()
    x = torch.randn(2, 4, 2, dtype=torch.float64)
    h0 = torch.zeros(2, 4, dtype=torch.float64)
    a = integrate(drift, h0, drift.encode(x), 0.1, Deterministic(), noise=True)
    b = integrate(drift, h0, drift.encode(x), 0.1)
    assert torch.equal(a, b)


def test_non_positive_learned_step_is_a_named_error_not_nan():
    from noisyrnn import build_model
    from noisyrnn.errors import ConfigError

    torch.manual_seed(0)
    model = build_model("nrnn", 1, 2, hidden_size=4, noise="sde", sigma1=0.5, learn_step=True)
    with torch.no_grad():
        model.step_size[0, 1] = -0.01
    x = torch.randn(3, 5, 1)
    for fused in (True, False):
        model.fused = fused
        with pytest.raises(ConfigError, match="positive step sizes"):
            model(x, noise=True, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(model(x)).all()  # noise off: the deterministic step is still defined


def test_one_entry_picks_its_backend_from_what_drift_and_scheme_declare():
    from noisyrnn.errors import ConfigError
    from noisyrnn.engine.integrate import fused_applies

    torch.manual_seed(0)
    lip = build_model("lipschitz", 2, 3, hidden_size=5)
    cornn = build_model("cornn", 2, 3, hidden_size=5)
    assert fused_applies(lip.drift, lip.scheme) and not fused_applies(cornn.drift, cornn.scheme)
    x = torch.randn(3, 8, 2)
    u, h0 = lip.drift.encode(x), torch.zeros(3, 5)
    fused = integrate(lip.drift, h0, u, lip.step_size, backend="fused")
    loop = integrate(lip.drift, h0, u, lip.step_size, backend="loop")
    assert torch.allclose(fused, loop, atol=1e-6) and torch.equal(integrate(lip.drift, h0, u, lip.step_size), fused)
    # coRNN declares its own form, which the cell engine runs; a drift without a form does not
    fused_c = integrate(cornn.drift, torch.zeros(3, 10), cornn.drift.encode(x), cornn.step_size, backend="fused")
    loop_c = integrate(cornn.drift, torch.zeros(3, 10), cornn.drift.encode(x), cornn.step_size, backend="loop")
    assert torch.allclose(fused_c, loop_c, atol=1e-6)
    from noisyrnn.dynamics import Drift

    class Plain(Drift):  # a user's drift that declares no form
        hidden_size = 5

        def forward(self, h, u):
            return torch.tanh(h + u)

    with pytest.raises(ConfigError, match="the .fused. recurrence does not apply to Plain"):
        integrate(Plain(), h0, torch.randn(3, 8, 5), 0.1, backend="fused")
    with pytest.raises(ConfigError, match="unknown recurrence backend 'gpu'"):
        integrate(lip.drift, h0, u, lip.step_size, backend="gpu")
