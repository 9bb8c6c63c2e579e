"""Training loop, configuration and checkpoints."""

from .checkpoint import load_model, save_model
from .trainer import TrainConfig, TrainingDiverged, TrainResult, fit, train_model

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "fit", "train_model",
           "load_model", "save_model"]
