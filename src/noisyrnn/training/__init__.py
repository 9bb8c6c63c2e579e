"""Training loop, configuration and checkpoints."""

from .checkpoint import load_model, save_model
from .trainer import TrainConfig, TrainingDiverged, TrainResult, fit, seed_everything, train_model

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "fit", "train_model", "seed_everything",
           "load_model", "save_model"]
