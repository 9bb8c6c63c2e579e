"""The paper's theory as tools: Theorem 1's explicit regulariser, Theorem 3's stability
bounds and measured Lyapunov exponents, and Hessian spectra of the training loss."""

from .hessian import LossHessian, hutchinson_trace, lanczos, spectral_density, top_eigenvalues
from .regularizer import MonteCarloGap, RegularizerTerms, monte_carlo_gap, regularizer_terms
from .stability import (
    lipschitz_nrnn_drift, lyapunov_bounds, multiplicative_diffusion, sample_lyapunov_exponents,
)

__all__ = ["regularizer_terms", "monte_carlo_gap", "RegularizerTerms", "MonteCarloGap",
           "lyapunov_bounds", "sample_lyapunov_exponents", "lipschitz_nrnn_drift", "multiplicative_diffusion",
           "LossHessian", "top_eigenvalues", "hutchinson_trace", "spectral_density", "lanczos"]
