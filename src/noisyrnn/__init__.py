"""noisyrnn: Noisy Recurrent Neural Networks (Lim, Erichson, Hodgkinson, Mahoney, NeurIPS 2021).

RNNs as Euler-Maruyama discretisations of input-driven SDEs (eq 2, 5), trained with noise
injected into the hidden states.
"""

from .dynamics import Diffusion, Drift, LipschitzDrift, MatrixDiffusion, PaperDiffusion, research_to_sde
from .errors import ConfigError, DataError, InputError, NoisyRNNError
from .engine.integrate import integrate
from .models import RecurrentClassifier, build_model, model_from_config
from .noise import Deterministic, EulerMaruyama, NoiseScheme, ResearchCodeNoise

__version__ = "0.1.0"


def __getattr__(name):  # scikit-learn is imported only when the estimator is asked for
    if name in ("NRNNClassifier", "NRNNRegressor"):
        from . import sklearn

        return getattr(sklearn, name)
    if name == "task_from_arrays":
        from .data import task_from_arrays

        return task_from_arrays
    raise AttributeError(f"module 'noisyrnn' has no attribute {name!r}")


__all__ = [
    "Drift", "LipschitzDrift", "Diffusion", "PaperDiffusion", "MatrixDiffusion", "research_to_sde",
    "NoiseScheme", "Deterministic", "EulerMaruyama", "ResearchCodeNoise", "integrate",
    "RecurrentClassifier", "build_model", "model_from_config",
    "NoisyRNNError", "InputError", "ConfigError", "DataError", "__version__", "NRNNClassifier", "NRNNRegressor",
    "task_from_arrays",
]
