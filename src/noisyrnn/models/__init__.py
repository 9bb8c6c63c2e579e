"""Sequence classifiers: the NRNN family and (later) its baselines, built by name."""

from .recurrent import RecurrentClassifier
from .registry import MODEL_NAMES, build_model, model_from_config

__all__ = ["RecurrentClassifier", "MODEL_NAMES", "build_model", "model_from_config"]
