"""Model selection on validation data only: every epoch's validation metrics (clean, and under
``TrainConfig.select_under`` with draws fixed once) and the rule that keeps an epoch
(:data:`SELECTION`)."""

from __future__ import annotations

import torch

from ..data.task import Split, Task
from ..ensemble import Ensemble
from ..evaluation import evaluate, perturbation_seed, real_steps_only, robustness
from ..perturbations import parse_column
from .config import SELECTION, TrainConfig
from .objective import Classification

__all__ = ["SELECTION", "members_validation_under", "perturbed_split", "validate_members", "validation_under"]


def validation_under(model, task: Task, config: TrainConfig) -> float:
    """Validation accuracy under ``config.select_under``, the same draws every epoch."""
    column = config.select_under
    return robustness(model, task.val, [column], seed=config.seed, batch_size=config.eval_batch_size,
                      value_range=task.data_range)[column]


@torch.no_grad()
def validate_members(ens: Ensemble, split, batch_size: int, objective=None) -> list[dict]:
    """Each member's validation metrics (noise off): accuracy and loss, or for a regression
    task loss, RMSE and MAE (:mod:`noisyrnn.training.objective`)."""
    objective = objective or Classification()
    device = next(ens.parameters()).device
    outputs, ys = [], []
    for start in range(0, len(split), batch_size):
        x, y, lengths = split.batch(slice(start, start + batch_size), device)
        outputs.append(ens(x, noise=False, lengths=lengths))  # (S, b, C)
        ys.append(y)
    return objective.validation(outputs, ys)


def perturbed_split(task: Task, config: TrainConfig, seed: int):
    """The validation split under ``config.select_under``, drawn once (as the single-model
    trainer's :func:`validation_under` draws it)."""
    pert = parse_column(config.select_under, task.data_range)
    val = task.val
    out = []
    gen = torch.Generator().manual_seed(perturbation_seed(seed, config.select_under))
    for start in range(0, len(val), config.eval_batch_size):
        x = val.x[start:start + config.eval_batch_size]
        lengths = None if val.lengths is None else val.lengths[start:start + config.eval_batch_size]
        out.append(real_steps_only(pert(x, gen), x, lengths))
    return Split(torch.cat(out), val.y, val.lengths)


def members_validation_under(task: Task, config: TrainConfig, seeds):
    """under(ens, i): member i's validation accuracy under ``config.select_under``, the same
    draws every epoch (random perturbations drawn once per member; attacks run on the member)."""
    pert = parse_column(config.select_under, task.data_range)
    if getattr(pert, "needs_model", False):
        configs = [TrainConfig(**{**config.to_dict(), "seed": s}) for s in seeds]
        return lambda ens, i: validation_under(ens.models[i], task, configs[i])
    splits = [perturbed_split(task, config, s) for s in seeds]
    return lambda ens, i: evaluate(ens.models[i], splits[i], config.eval_batch_size)["accuracy"]
