"""Models built by name: the NRNN family and its baselines as classifiers (eq 14) or regressors,
on the one recurrent layer of :mod:`noisyrnn.models.recurrent`."""

from .recurrent import Recurrence, RecurrentClassifier, RecurrentRegressor
from .registry import MODEL_NAMES, RECURRENCES, build_model, build_regressor, model_from_config

__all__ = ["Recurrence", "RecurrentClassifier", "RecurrentRegressor", "MODEL_NAMES", "RECURRENCES", "build_model",
           "build_regressor", "model_from_config"]
