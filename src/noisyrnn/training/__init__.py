"""Training: settings (``config``), the one loop (``loop``), model selection (``selection``),
atomic checkpoints and exact resume (``checkpoint``, ``run_folder``), and the entry points
(``api``: :func:`fit`, :func:`train_model`, :func:`fit_ensemble`)."""

from .api import fit, fit_ensemble, train_model
from .checkpoint import load_model, save_model
from .config import TrainConfig, TrainingDiverged, TrainResult
from .loop import fit_members

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "fit", "fit_ensemble", "fit_members", "train_model",
           "load_model", "save_model"]
