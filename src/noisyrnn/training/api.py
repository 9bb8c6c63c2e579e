"""Training entry points on top of the one loop (:func:`~noisyrnn.training.loop.fit_members`):
a given model (:func:`fit`), a registry model by name (:func:`train_model`), and one model per
seed trained seed-batched (:func:`fit_ensemble`)."""

from __future__ import annotations

from pathlib import Path

from ..data.task import Task
from ..errors import ConfigError
from ..models import build_model, build_regressor
from .config import TrainConfig, TrainResult
from .loop import fit_members


def fit(model, task: Task, config: TrainConfig, out_dir: Path | None = None, resume: bool = True,
        progress: bool = True, log=None) -> TrainResult:
    """Train ``model`` on ``task.train``, selecting the epoch with the best validation accuracy.

    With ``out_dir`` every epoch commits a resumable training state and the metrics log, and
    the selected model is saved as ``out_dir/model.safetensors``; with ``resume`` an existing
    state of the same run there is continued exactly (same weights, optimizer, RNG).
    """
    dirs = None if out_dir is None else [Path(out_dir)]
    return fit_members([model], task, config, [config.seed], out_dir=out_dir, member_dirs=dirs, resume=resume,
                       progress=progress, log=log)[0]


def train_model(name: str, params: dict, task: Task, config: TrainConfig, out_dir=None,
                resume: bool = True, progress: bool = True) -> TrainResult:
    """Build model ``name`` for ``task`` (initialised from ``config.seed``) and :func:`fit` it."""
    if task.input_size < 1:
        raise ConfigError(f"task {task.name!r} has no input channels")
    model = _build(name, task, config.seed, params)
    return fit(model, task, config, out_dir=out_dir, resume=resume, progress=progress)


def fit_ensemble(name: str, params: dict, task: Task, config: TrainConfig, seeds, out_dir=None,
                 member_dirs=None, resume: bool = True, progress: bool = True) -> list[TrainResult]:
    """Train model ``name`` once per seed in ``seeds``, all in one batched pass; returns one
    :class:`TrainResult` per seed, each holding that member's selected weights (member i is
    exactly the run :func:`train_model` gives with seed ``seeds[i]``)."""
    seeds = [int(s) for s in seeds]
    # each member initialised as its separate run (build_model(seed=s)): no global RNG
    models = [_build(name, task, s, params) for s in seeds]
    return fit_members(models, task, config, seeds, out_dir=out_dir, member_dirs=member_dirs, resume=resume,
                       progress=progress, label=f"{name} x{len(seeds)}")


def _build(name: str, task: Task, seed: int, params) -> torch.nn.Module:
    """Model ``name`` for ``task``: a classifier, or for a regression task a regressor."""
    build = build_regressor if getattr(task, "regression", False) else build_model
    return build(name, task.input_size, task.num_outputs, seed=seed, **(params or {}))
