"""The paper's theory as tools: Theorem 1's explicit regulariser (and training with it),
Theorem 2's margin bound and empirical margins, Jacobian products, Theorem 3's stability
bounds and measured Lyapunov exponents, and Hessian spectra of the training loss."""

from .hessian import LossHessian, hutchinson_trace, lanczos, spectral_density, top_eigenvalues
from .regularizer import MonteCarloGap, RegularizerTerms, monte_carlo_gap, regularizer_terms
from .explicit import ExplicitObjective, explicit_regularizer, noise_std
from .jacobians import JacobianNorms, jacobian_norms, product_norms
from .margin import EmpiricalMargin, MarginBound, certified_margin_bound, empirical_margin, margin_bounds, scores
from .stability import (
    lipschitz_nrnn_drift, lyapunov_bounds, multiplicative_diffusion, proven_lyapunov_bounds,
    sample_lyapunov_exponents, scalar_multiplicative_diffusion,
)

__all__ = ["regularizer_terms", "monte_carlo_gap", "RegularizerTerms", "MonteCarloGap",
           "lyapunov_bounds", "proven_lyapunov_bounds", "sample_lyapunov_exponents", "lipschitz_nrnn_drift",
           "multiplicative_diffusion", "scalar_multiplicative_diffusion",
           "explicit_regularizer", "noise_std", "ExplicitObjective",
           "jacobian_norms", "product_norms", "JacobianNorms",
           "scores", "empirical_margin", "margin_bounds", "certified_margin_bound", "EmpiricalMargin", "MarginBound",
           "LossHessian", "top_eigenvalues", "hutchinson_trace", "spectral_density", "lanczos"]
