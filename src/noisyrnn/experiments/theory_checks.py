"""``noisyrnn theory-checks``: Theorems 1 and 3 checked numerically on small systems.

* Theorem 1: the Monte Carlo gap E l(h_M) - l(hbar_M) (control-variate estimator, 95%
  interval) against eps^2/2 (Q + R) for decreasing eps, the log-log slope, the relative
  error at the smallest eps, the Delta-scalings of eq (13) and R >= 0 (thm1.json, thm1.png).
* Theorem 3: measured sample Lyapunov exponents (same Brownian path, Benettin renormalisation)
  against the bounds of eq (20) for a closed-form linear system and random nonlinear NRNNs
  at several noise levels, and a stochastic-stabilisation example (thm3.json, thm3.png).
"""

from __future__ import annotations

import functools

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..data.files import atomic_write_text
from ..dynamics import LipschitzDrift, PaperDiffusion
from .figures import save_png
from ..theory.regularizer import monte_carlo_gap, regularizer_terms
from ..theory.stability import (
    lipschitz_nrnn_drift, lyapunov_bounds, multiplicative_diffusion, proven_lyapunov_bounds,
    sample_lyapunov_exponents, scalar_multiplicative_diffusion,
)


def isolated_rng(fn):
    """Run ``fn`` under its own copy of torch's global RNG (it seeds and draws from it), so the
    caller's RNG state is what it was: a library call leaves no global side effect."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)

    return wrapper


@isolated_rng
def theorem1_problem(seed: int = 0):
    """A 3-unit NRNN (drift eq 3, diffusion eq 4 with sigma1 = 0.6, sigma2 = 0.8), M = 12
    steps of 0.2, cross-entropy loss of a random 2-class readout: (drift, diffusion, loss, h0, u, deltas)."""
    torch.manual_seed(seed)
    drift = LipschitzDrift(1, 3, init_std=6.0).double()
    diffusion = PaperDiffusion(1.0, 0.6, 0.8)
    x = torch.randn(12, 1, dtype=torch.float64)
    u = drift.encode(x).detach()
    V = torch.randn(2, 3, dtype=torch.float64)
    loss = lambda h: torch.nn.functional.cross_entropy((V @ h).unsqueeze(0), torch.tensor([1]))  # noqa: E731
    return drift, diffusion, loss, torch.zeros(3, dtype=torch.float64), u, torch.full((12,), 0.2, dtype=torch.float64)


def theorem1_check(paths: int = 100_000, seed: int = 0, eps_levels=(0.4, 0.2, 0.1, 0.05, 0.025)) -> dict:
    drift, diffusion, loss, h0, u, deltas = theorem1_problem(seed)
    terms = regularizer_terms(drift, diffusion, loss, h0, u, deltas)
    gen = torch.Generator().manual_seed(seed + 1)
    rows = []
    for eps in eps_levels:
        r = monte_carlo_gap(drift, diffusion, loss, h0, u, deltas, eps, paths=paths, generator=gen, terms=terms)
        rows.append({"eps": eps, "gap": r.gap, "stderr": r.stderr, "predicted": r.predicted,
                     "relative_error": r.relative_error})
    e = np.log([r["eps"] for r in rows])
    g = np.log([r["gap"] for r in rows])
    slope = float(np.polyfit(e, g, 1)[0])
    scal = [regularizer_terms(drift, diffusion, loss, h0, u, torch.full((12,), d, dtype=torch.float64))
            for d in (0.005, 0.0025)]
    return {"Q": terms.Q, "R": terms.R, "R_nonnegative": terms.R >= 0, "paths": paths, "levels": rows,
            "slope": slope, "relative_error_smallest_eps": rows[-1]["relative_error"],
            "eq13": {"R_ratio_halving_delta": scal[0].R / scal[1].R, "Q_ratio_halving_delta": scal[0].Q / scal[1].Q,
                     "expected": "R ratio -> 2 (R = O(Delta)), Q ratio -> 4 (Q = O(Delta^2))"}}


@isolated_rng
def theorem3_check(seed: int = 0, horizon: float = 100.0, dt: float = 0.005, paths: int = 16) -> dict:
    rows = []
    # closed form: dh = a h dt + s h dB has Lambda = a - s^2/2, where the bounds meet
    a, s = 0.5, 1.5
    A = a * torch.eye(1, dtype=torch.float64)
    W = torch.zeros(1, 1, dtype=torch.float64)
    lam = sample_lyapunov_exponents(lambda h: h @ A.T, multiplicative_diffusion(s),
                                    torch.randn(paths, 1, dtype=torch.float64), horizon=200.0, dt=0.002,
                                    generator=torch.Generator().manual_seed(seed))
    lo, hi = lyapunov_bounds(A, W, s, s)
    rows.append(_row("linear d=1, a=0.5, s=1.5 (exact -0.625)", lo, hi, lam, 200.0, s))
    # random nonlinear NRNNs (eq 3 drift, tanh), sigma(h) dB = s h dB_0 + 0.3 dB_{1..6}
    for sys_seed in (3, 4):
        torch.manual_seed(seed + sys_seed)
        mod = LipschitzDrift(1, 6, beta=0.75, gamma_a=0.5, gamma_w=0.1, init_std=4.0).double()
        A, W = mod.A.detach(), mod.W.detach()
        for s in (0.0, 0.5, 1.2):
            lam = sample_lyapunov_exponents(lipschitz_nrnn_drift(A, W),
                                            scalar_multiplicative_diffusion(s, additive=0.3),
                                            torch.randn(paths, 6, dtype=torch.float64), horizon=horizon, dt=dt,
                                            generator=torch.Generator().manual_seed(seed + 2))
            lo, hi = lyapunov_bounds(A, W, s, s)
            rows.append(_row(f"NRNN d=6 #{sys_seed}, s h dB + 0.3 dB, s={s}", lo, hi, lam, horizon, s))
    # stochastic stabilisation: A = 0.4 I + skew part, ||W|| small: unstable without noise
    torch.manual_seed(seed + 7)
    d = 4
    skew = torch.randn(d, d, dtype=torch.float64)
    A = 0.4 * torch.eye(d, dtype=torch.float64) + 0.5 * (skew - skew.T)
    W = 0.05 * torch.randn(d, d, dtype=torch.float64)
    stab = []
    for s in (0.0, 0.8, 1.6):
        lam = sample_lyapunov_exponents(lipschitz_nrnn_drift(A, W), scalar_multiplicative_diffusion(s),
                                        torch.randn(paths, d, dtype=torch.float64), horizon=horizon, dt=dt,
                                        generator=torch.Generator().manual_seed(seed + 5))
        lo, hi = lyapunov_bounds(A, W, s, s)
        stab.append(_row(f"stabilisation d=4, A=0.4I+skew, s h dB, s={s}", lo, hi, lam, horizon, s))
    # eq (20)'s upper bound needs |e^T Delta_sigma(e)| >= sigma1 ||e||^2, which Frobenius bounds
    # alone do not give: diagonal noise with independent components (as eq (4)) breaks it
    s = 1.6
    lam = sample_lyapunov_exponents(lipschitz_nrnn_drift(A, W), multiplicative_diffusion(s),
                                    torch.randn(paths, d, dtype=torch.float64), horizon=horizon, dt=dt,
                                    generator=torch.Generator().manual_seed(seed + 5))
    lo, hi = lyapunov_bounds(A, W, s, s)
    counter = _row(f"same drift, s diag(h) dB (independent), s={s}", lo, hi, lam, horizon, s)
    plo, phi = proven_lyapunov_bounds(A, W, rho=s / math.sqrt(d), sigma2=s, sigma1=s)
    counter.update({"proven_lower": plo, "proven_upper": phi,
                    "within_proven_bounds": bool(plo - counter["finite_horizon_slack"] <= counter["measured_min"]
                                                 and counter["measured_max"] <= phi + counter["finite_horizon_slack"])})
    within = all(r["within_bounds"] for r in rows + stab)
    return {"rows": rows, "stabilisation": stab, "all_within_bounds": within,
            "stabilised": stab[0]["measured_min"] > 0 and stab[-1]["measured_max"] < 0 and stab[-1]["upper"] < 0,
            "frobenius_only_counterexample": counter,
            "settings": {"horizon": horizon, "dt": dt, "paths": paths}}


def _row(name, lo, hi, lam, horizon, s) -> dict:
    slack = 4 * s / math.sqrt(horizon)  # finite-horizon Brownian fluctuation of log||e_T|| / T
    return {"system": name, "lower": lo, "upper": hi, "measured_mean": float(lam.mean()),
            "measured_std": float(lam.std()), "measured_min": float(lam.min()), "measured_max": float(lam.max()),
            "finite_horizon_slack": slack,
            "within_bounds": bool(lo - slack <= float(lam.min()) and float(lam.max()) <= hi + slack)}


def _figures(out: Path, t1: dict, t3: dict) -> None:
    from .figures import subplots

    fig, ax = subplots(figsize=(5.5, 4.2))
    eps = np.array([r["eps"] for r in t1["levels"]])
    gap = np.array([r["gap"] for r in t1["levels"]])
    err = 1.96 * np.array([r["stderr"] for r in t1["levels"]])
    ax.errorbar(eps, gap, yerr=err, fmt="o", label="Monte Carlo E l(h_M) - l(hbar_M) (95% CI)")
    ax.plot(eps, [r["predicted"] for r in t1["levels"]], "-", label="eps²/2 (Q + R), Theorem 1")
    ax.set(xscale="log", yscale="log", xlabel="eps", ylabel="gap",
           title=f"Theorem 1: slope {t1['slope']:.3f}, rel. error {100 * t1['relative_error_smallest_eps']:.1f}% at eps={eps[-1]}")
    ax.legend(fontsize=8)
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(eps, [f"{e:g}" for e in eps])
    save_png(fig, out / "thm1.png")

    rows = t3["rows"] + t3["stabilisation"] + [t3["frobenius_only_counterexample"]]
    fig, ax = subplots(figsize=(11, 0.45 * len(rows) + 1.8))
    for i, r in enumerate(rows):
        ax.plot([r["lower"], r["upper"]], [i, i], "k-", lw=6, alpha=0.25)
        ax.plot([r["measured_min"], r["measured_max"]], [i, i], "C3|-", lw=2, ms=10)
    c = t3["frobenius_only_counterexample"]
    ax.plot([c["proven_lower"], c["proven_upper"]], [len(rows) - 1] * 2, "C0-", lw=2, alpha=0.6,
            label="bounds with |eᵀΔσ| ≥ (s/√d)||e||² (last row)")
    ax.legend(fontsize=7, loc="lower right")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [r["system"] for r in rows], fontsize=7)
    ax.set_xlabel("Lyapunov exponent: eq (20) bounds (grey), measured min-max over paths (red)")
    ax.set_title("Theorem 3")
    save_png(fig, out / "thm3.png")


def run_theory_checks(out: Path, paths: int = 100_000, seed: int = 0) -> dict:
    out = Path(out)
    t0 = time.perf_counter()
    t1 = theorem1_check(paths=paths, seed=seed)
    atomic_write_text(out / "thm1.json", json.dumps(t1, indent=2))
    t3 = theorem3_check(seed=seed)
    atomic_write_text(out / "thm3.json", json.dumps(t3, indent=2))
    _figures(out, t1, t3)
    headline = {"thm1_slope": t1["slope"], "thm1_relative_error_smallest_eps": t1["relative_error_smallest_eps"],
                "thm1_R_nonnegative": t1["R_nonnegative"], "thm1_eq13_R_ratio": t1["eq13"]["R_ratio_halving_delta"],
                "thm1_eq13_Q_ratio": t1["eq13"]["Q_ratio_halving_delta"],
                "thm3_all_within_bounds": t3["all_within_bounds"], "thm3_stabilised": t3["stabilised"],
                "thm3_frobenius_only_counterexample_violates_eq20":
                    not t3["frobenius_only_counterexample"]["within_bounds"],
                "seconds": time.perf_counter() - t0}
    atomic_write_text(out / "summary.json", json.dumps(headline, indent=2))
    return {"thm1": t1, "thm3": t3, "headline": headline}
