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
                resume: bool = True, progress: bool = True, n_members: int = 1) -> TrainResult:
    """Build model ``name`` for ``task`` (initialised from ``config.seed``) and :func:`fit` it.

    ``n_members > 1``: a seed ensemble, its members (seeds :func:`~noisyrnn.models.averaged.member_seeds`)
    trained seed-batched in one pass, each selecting its own epoch; the result's model averages
    their probabilities (:class:`~noisyrnn.models.averaged.AveragedMembers`), ``best_epoch`` and
    ``history`` are member 0's, ``best_val_accuracy`` the members' mean, ``members`` every
    member's result. With ``out_dir`` the members are saved under ``out_dir/members/i`` and the
    ensemble to ``out_dir``."""
    if task.input_size < 1:
        raise ConfigError(f"task {task.name!r} has no input channels")
    if int(n_members) == 1:
        model = _build(name, task, config.seed, params)
        return fit(model, task, config, out_dir=out_dir, resume=resume, progress=progress)
    from ..models.averaged import AveragedMembers, member_seeds

    seeds = member_seeds(config.seed, n_members)
    dirs = None if out_dir is None else [Path(out_dir) / "members" / str(i) for i in range(len(seeds))]
    results = fit_ensemble(name, params, task, config, seeds, out_dir=out_dir, member_dirs=dirs, resume=resume,
                           progress=progress)
    model = AveragedMembers([r.model for r in results]).eval()
    best = [r.best_val_accuracy for r in results]
    result = TrainResult(model, results[0].best_epoch, sum(best) / len(best), results[0].history, results[0].seconds,
                         members=results)
    if out_dir is not None:
        from .checkpoint import save_model

        save_model(Path(out_dir), model, extra={
            "train_config": config.to_dict(), "task": task.name, "data": task.data_spec(),
            "member_seeds": seeds, "members_best_epoch": [r.best_epoch for r in results],
            "best_val_accuracy": result.best_val_accuracy})
    return result


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
