"""Theory tools against brute force: dense Hessians, closed-form linear SDEs, Monte Carlo."""

import math

import pytest
import torch

from noisyrnn import LipschitzDrift, PaperDiffusion, build_model
from noisyrnn.theory import (
    LossHessian, hutchinson_trace, lipschitz_nrnn_drift, lyapunov_bounds, monte_carlo_gap,
    multiplicative_diffusion, proven_lyapunov_bounds, regularizer_terms, scalar_multiplicative_diffusion, sample_lyapunov_exponents, spectral_density, top_eigenvalues,
)


def small_problem(noise=(0.6, 0.8), seed=0):
    torch.manual_seed(seed)
    drift = LipschitzDrift(1, 3, init_std=6.0).double()
    diffusion = PaperDiffusion(1.0, *noise)
    x = torch.randn(12, 1, dtype=torch.float64)
    u = drift.encode(x).detach()
    deltas = torch.full((12,), 0.2, dtype=torch.float64)
    V = torch.randn(2, 3, dtype=torch.float64)
    loss_fn = lambda h: torch.nn.functional.cross_entropy((V @ h).unsqueeze(0), torch.tensor([1]))  # noqa: E731
    return drift, diffusion, loss_fn, torch.zeros(3, dtype=torch.float64), u, deltas


def test_R_is_nonnegative_for_a_convex_loss_and_matches_brute_force():
    drift, diffusion, loss_fn, h0, u, deltas = small_problem()
    terms = regularizer_terms(drift, diffusion, loss_fn, h0, u, deltas)
    assert terms.R >= 0
    # brute force eq (11): explicit Jacobian products Phi and the sum over m
    from torch.func import hessian, jacrev
    from noisyrnn.theory.regularizer import deterministic_path
    with torch.no_grad():
        hbar = deterministic_path(drift, h0, u, deltas)
    f_of = lambda h, um: drift(h.unsqueeze(0), um.unsqueeze(0))[0]  # noqa: E731
    Js = [torch.eye(3, dtype=torch.float64) + deltas[m] * jacrev(f_of)(hbar[m], u[m]) for m in range(12)]
    H = hessian(loss_fn)(hbar[12])
    R = 0.0
    for m in range(1, 13):
        Phi = torch.eye(3, dtype=torch.float64)
        for j in range(m, 12):  # Phi_{M-1,m} = J_{M-1} ... J_m
            Phi = Js[j] @ Phi
        f = f_of(hbar[m - 1], u[m - 1])
        S = torch.diag(diffusion.eps * (diffusion.sigma1 + diffusion.sigma2 * f))
        R += deltas[m - 1] * torch.trace(S.T @ Phi.T @ H @ Phi @ S)
    assert math.isclose(terms.R, float(R), rel_tol=1e-10)


def test_monte_carlo_gap_has_slope_two_and_matches_theorem1():
    drift, diffusion, loss_fn, h0, u, deltas = small_problem()
    terms = regularizer_terms(drift, diffusion, loss_fn, h0, u, deltas)
    gen = torch.Generator().manual_seed(0)
    results = [monte_carlo_gap(drift, diffusion, loss_fn, h0, u, deltas, eps, paths=100_000, generator=gen,
                               terms=terms) for eps in (0.2, 0.1, 0.05)]
    gaps = [r.gap for r in results]
    slope = math.log(gaps[0] / gaps[2]) / math.log(0.2 / 0.05)
    assert abs(slope - 2) < 0.15
    small = results[-1]
    assert small.relative_error < 0.05
    assert abs(small.gap - small.predicted) < 4 * small.stderr + 0.05 * abs(small.predicted)


def test_delta_scaling_of_Q_and_R():
    """Eq (13): |R| = O(Delta), |Q| = O(Delta^2) as the step shrinks (fixed number of steps):
    halving Delta halves R and quarters Q once Delta is small (here below 0.01)."""
    drift, diffusion, loss_fn, h0, u, _ = small_problem()
    t = [regularizer_terms(drift, diffusion, loss_fn, h0, u, torch.full((12,), d, dtype=torch.float64))
         for d in (0.005, 0.0025)]
    assert 1.9 < t[0].R / t[1].R < 2.1
    assert 3.6 < abs(t[0].Q / t[1].Q) < 4.4


@pytest.mark.slow
def test_lyapunov_exponent_of_geometric_brownian_motion():
    """dh = a h dt + s h dB: log|e_T|/T = a - s^2/2 + s B_T/T exactly, so the finite-horizon
    estimate scatters with std s/sqrt(T) around Lambda = a - s^2/2, where eq (20)'s bounds meet."""
    a, s, T, n = 0.5, 1.5, 200.0, 32
    A = a * torch.eye(1, dtype=torch.float64)
    W = torch.zeros(1, 1, dtype=torch.float64)
    drift = lambda h: h @ A.T  # noqa: E731
    lam = sample_lyapunov_exponents(drift, multiplicative_diffusion(s), torch.randn(n, 1, dtype=torch.float64),
                                    horizon=T, dt=0.002, generator=torch.Generator().manual_seed(0))
    lo, hi = lyapunov_bounds(A, W, s, s, lipschitz_a=1.0)
    assert lo == pytest.approx(a - s**2 / 2) and hi == pytest.approx(a - s**2 / 2)
    slack = 4 * s / math.sqrt(T)  # finite-horizon Brownian fluctuation
    assert lo - slack <= float(lam.min()) and float(lam.max()) <= hi + slack
    assert abs(float(lam.mean()) - (a - s**2 / 2)) < 4 * s / math.sqrt(T * n) + 0.01  # + Euler bias
    # stochastic stabilisation: unstable without noise (Lambda = a > 0), stable with it
    assert float(lam.max()) < 0
    lam0 = sample_lyapunov_exponents(drift, multiplicative_diffusion(0.0), torch.randn(8, 1, dtype=torch.float64),
                                     horizon=20.0, dt=0.01, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(lam0, torch.full_like(lam0, a), atol=0.02)


@pytest.mark.slow
def test_measured_exponents_of_a_nonlinear_nrnn_lie_within_bounds():
    torch.manual_seed(3)
    drift_mod = LipschitzDrift(1, 6, beta=0.75, gamma_a=0.5, gamma_w=0.1, init_std=4.0).double()
    A, W = drift_mod.A.detach(), drift_mod.W.detach()
    T = 60.0
    for s in (0.0, 0.5, 1.2):
        lam = sample_lyapunov_exponents(lipschitz_nrnn_drift(A, W), scalar_multiplicative_diffusion(s, additive=0.3),
                                        torch.randn(16, 6, dtype=torch.float64), horizon=T, dt=0.005,
                                        generator=torch.Generator().manual_seed(2))
        lo, hi = lyapunov_bounds(A, W, s, s)
        slack = 4 * s / math.sqrt(T)  # finite-horizon fluctuation of the log-norm
        assert lo - slack <= float(lam.min()) and float(lam.max()) <= hi + slack


@pytest.mark.slow
def test_stochastic_stabilisation_and_the_limits_of_eq20():
    """A drift unstable without noise (A = 0.4 I + skew) is stabilised by s h dB (one Brownian
    motion): eq (20)'s upper bound turns negative and the measured exponent follows. With
    diagonal noise s diag(h) dB (independent components) the Frobenius assumption of Theorem 3
    holds with sigma1 = sigma2 = s, yet the measured exponent exceeds eq (20)'s upper bound; it
    stays within the bounds proven with |e^T Delta_sigma| >= (s / sqrt(d)) ||e||^2."""
    torch.manual_seed(7)
    d, T, s = 4, 100.0, 1.6
    skew = torch.randn(d, d, dtype=torch.float64)
    A = 0.4 * torch.eye(d, dtype=torch.float64) + 0.5 * (skew - skew.T)
    W = 0.05 * torch.randn(d, d, dtype=torch.float64)
    drift = lipschitz_nrnn_drift(A, W)
    h0 = torch.randn(16, d, dtype=torch.float64)
    run = lambda sigma: sample_lyapunov_exponents(drift, sigma, h0, horizon=T, dt=0.005,  # noqa: E731
                                                  generator=torch.Generator().manual_seed(5))
    lam0 = run(scalar_multiplicative_diffusion(0.0))
    assert float(lam0.min()) > 0.35  # unstable: Lambda >= lambda_min(A_sym) = 0.4 up to the W term
    lo, hi = lyapunov_bounds(A, W, s, s)
    assert hi < 0
    lam = run(scalar_multiplicative_diffusion(s))
    slack = 4 * s / math.sqrt(T)
    assert float(lam.max()) < 0 and lo - slack <= float(lam.min()) and float(lam.max()) <= hi + slack
    assert abs(float(lam.mean()) - (lo + hi) / 2) < (hi - lo) / 2 + 4 * s / math.sqrt(T * 16)
    lam_diag = run(multiplicative_diffusion(s))
    assert float(lam_diag.mean()) > hi + 4 * s / math.sqrt(T * 16)  # eq (20)'s upper bound fails
    plo, phi = proven_lyapunov_bounds(A, W, rho=s / math.sqrt(d), sigma2=s, sigma1=s)
    assert plo - slack <= float(lam_diag.min()) and float(lam_diag.max()) <= phi + slack


@pytest.mark.slow
def test_hessian_tools_against_the_dense_hessian():
    torch.manual_seed(0)
    model = build_model("lipschitz", 1, 2, hidden_size=4, step=0.3, init_std=3.0).double()
    x, y = torch.randn(20, 8, 1, dtype=torch.float64), torch.randint(0, 2, (20,))
    H = LossHessian(model, x, y)
    dense = H.dense()
    assert torch.allclose(dense, dense.T, atol=1e-10)
    v = torch.randn(H.size, dtype=torch.float64)
    assert torch.allclose(H.hvp(v), dense @ v, atol=1e-10)
    evals = torch.linalg.eigvalsh(dense)
    top = top_eigenvalues(H, k=2, steps=H.size, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(top, evals.flip(0)[:2], rtol=1e-6, atol=1e-9)
    est, se = hutchinson_trace(H, samples=300, generator=torch.Generator().manual_seed(0))
    assert abs(est - float(dense.trace())) < 5 * se
    grid, dens = spectral_density(H, steps=H.size, probes=2, generator=torch.Generator().manual_seed(0))
    mass = float(torch.trapezoid(dens, grid))
    assert abs(mass - 1) < 0.02
