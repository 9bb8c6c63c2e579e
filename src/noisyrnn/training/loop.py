"""The one training loop, for S >= 1 models of one architecture trained as one
:class:`~noisyrnn.ensemble.Ensemble` (S = 1 is a plain run).

Member i is trained exactly as a separate run with ``seeds[i]``: its initialisation, shuffling
and noise generators, its Adam state, its lr schedule and its model selection on validation.
The pieces: :func:`train_epoch` (one pass over the training split), :func:`select_epoch`
(keep the epoch :data:`~noisyrnn.training.config.SELECTION` prefers), :func:`commit_epoch`
(one atomic training state per epoch, the metrics logs) and :func:`finish` (each member as a
stand-alone model). :func:`fit_members` puts them together, owning the run folder.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.files import atomic_write_text
from ..data.task import Task
from ..ensemble import Ensemble
from ..errors import ConfigError
from ..locking import FolderLock
from ..memory import ensure_fits, training_bytes
from ..theory.explicit import explicit_regularizer
from .checkpoint import load_training_state, save_model, save_training_state
from .config import METRICS_LOG, SELECTION, TrainConfig, TrainingDiverged, TrainResult, generators, make_optimizer
from .config import resolve_device
from .progress import EpochProgress
from .run_folder import prepare_run_folder, run_identity
from .augment import augment_inputs
from .objective import objective_of
from .selection import members_validation_under, validate_members


@dataclass
class LoopState:
    """What the loop carries from epoch to epoch (and a training state restores)."""

    histories: list
    best_keys: list
    best_epochs: list
    best_state: dict
    start_epoch: int = 0
    elapsed: float = 0.0
    gens: dict = field(default_factory=dict)


def fit_members(models, task: Task, config: TrainConfig, seeds, out_dir=None, member_dirs=None,
                resume: bool = True, progress: bool = True, log=None, label: str | None = None) -> list[TrainResult]:
    """Train ``models`` (one architecture, S >= 1) with one seed each; returns one
    :class:`TrainResult` per model, holding its selected weights.

    With ``out_dir`` every epoch commits a resumable training state there (and each member's
    metrics log to ``member_dirs[i]``); with ``resume`` a state of the same run is continued
    exactly, a state of another run is an error (``resume=False`` replaces it). The folder is
    owned (locked) for the whole run. Each member is saved as a stand-alone model to
    ``member_dirs[i]``.
    """
    config.validate()
    seeds = [int(s) for s in seeds]
    S = len(models)
    if S != len(seeds) or (member_dirs is not None and len(member_dirs) != S):
        raise ConfigError(f"fit_members needs one seed (and one folder) per model, got {S} models, "
                          f"{len(seeds)} seeds")
    if config.regularizer == "explicit" and S > 1:
        raise ConfigError(f"regularizer={config.regularizer!r} is not supported for seed-batched ensembles; "
                          "train the seeds separately")
    if getattr(task, "regression", False) and (config.select_under or config.regularizer == "explicit"):
        raise ConfigError("a regression task takes neither train.select_under (it selects on validation accuracy "
                          "under noise) nor the explicit regulariser (written for the cross-entropy of eq 14)")
    if not getattr(task, "held_out_validation", True) and config.select != "last":
        raise ConfigError(f"task {task.name!r} holds no validation data of its own (val_fraction = 0: its validation "
                          f"split is the training split), so train.select = {config.select!r} would choose the epoch "
                          "on training data; set train.select = \"last\"")
    device = resolve_device(config.device)
    first = models[0]
    batch = config.batch_for(len(task.train))
    ensure_fits(f"training {S} model(s) of hidden size {first.hidden_size} on batches of {batch} sequences of "
                f"{task.seq_len} steps",
                training_bytes(first.hidden_size, task.input_size, task.num_classes, batch, task.seq_len, S),
                hint="lower train.batch_size or params.hidden_size, or give shorter sequences")
    out_dir = Path(out_dir) if out_dir is not None else None
    folders = [Path(d) for d in member_dirs] if member_dirs is not None else []
    with (FolderLock(out_dir, what="training folder") if out_dir is not None else nullcontext()):
        identity = saved = None
        if out_dir is not None:
            identity = run_identity(models, task, config, seeds)
            saved = prepare_run_folder(out_dir, folders, identity, resume)
        return _run(models, task, config, seeds, out_dir, folders, identity, saved, progress, log, label, device)


def _run(models, task, config, seeds, out_dir, member_dirs, identity, saved, progress, log, label, device):
    S = len(models)
    ens = Ensemble(models).to(device)
    optimizer = make_optimizer(ens, config)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, config.milestones, config.lr_gamma)
    state = _start(ens, S, seeds, device, out_dir, optimizer, scheduler, saved)
    inject = bool(config.noise) and ens.injects_noise
    if config.regularizer == "explicit" and inject:
        raise ConfigError("regularizer='explicit' replaces noise injection: set noise = false")
    under = members_validation_under(task, config, seeds) if config.select_under else None
    objective = objective_of(task)
    bar = EpochProgress(label or models[0].config.get("name", "train"), state.start_epoch, config.epochs, progress)
    for epoch in range(state.start_epoch, config.epochs):
        t0 = time.perf_counter()
        loss_sum, correct = train_epoch(ens, task, config, state.gens, seeds, epoch, inject, optimizer, objective)
        scheduler.step()
        ens.eval()
        val = validate_members(ens, task.val, config.eval_batch_size, objective)
        if under is not None:
            for i, v in enumerate(val):
                v["val_under"] = under(ens, i)
        state.elapsed += time.perf_counter() - t0
        n = len(task.train)
        width = task.num_outputs
        metrics = [{"epoch": epoch, "train_loss": float(loss_sum[i]) / n,
                    objective.train_metric: objective.train_value(float(correct[i]), n, width),
                    **val[i], "lr": optimizer.param_groups[0]["lr"], "seconds": state.elapsed} for i in range(S)]
        select_epoch(ens, state, metrics, config, objective.regression)
        for m in metrics if log is not None else ():
            log(m)
        bar.update({k: sum(h[-1][k] for h in state.histories) / S for k in state.histories[0][-1] if k != "epoch"}
                   | {"epoch": epoch})
        commit_epoch(ens, state, epoch, optimizer, scheduler, config, seeds, identity, out_dir, member_dirs)
    write_metrics_logs(member_dirs, state.histories)  # also after a resume that had no epoch left
    bar.close()
    return finish(ens, state, task, config, seeds, member_dirs)


def _start(ens, S, seeds, device, out_dir, optimizer, scheduler, saved) -> LoopState:
    """A fresh loop state, or the one the folder's training state holds (``saved``: as
    :func:`~noisyrnn.training.run_folder.prepare_run_folder` read it)."""
    gens = {}
    for i, s in enumerate(seeds):
        g = generators(s, device)
        gens[f"shuffle{i}"], gens[f"noise{i}"] = g["shuffle"], g["noise"]
    state = LoopState([[] for _ in range(S)], [None] * S, [-1] * S,
                      {k: v.detach().clone() for k, v in ens.state_dict().items()}, gens=gens)
    if saved is not None:
        info, saved_best = load_training_state(out_dir, ens, optimizer, scheduler, gens, saved)
        state.histories, state.best_epochs, state.elapsed = info["history"], info["best_epoch"], info["seconds"]
        state.best_keys = [tuple(k) if k else None for k in info["best_key"]]
        state.best_state = saved_best or state.best_state
        state.start_epoch = info["epoch"] + 1
    return state


def train_epoch(ens, task: Task, config: TrainConfig, gens: dict, seeds, epoch: int, inject: bool, optimizer,
                objective=None):
    """One pass over the training split, every member on its own shuffle and noise; returns the
    per-member (sum of losses, score sum: number correct, or a regression's squared errors)."""
    objective = objective or objective_of(task)
    S, train, models = ens.members, task.train, ens.models
    device = next(ens.parameters()).device
    explicit = config.regularizer == "explicit"
    noise_gens = [gens[f"noise{i}"] for i in range(S)]
    ens.train()
    orders = [torch.randperm(len(train), generator=gens[f"shuffle{i}"]) for i in range(S)]
    loss_sum = torch.zeros(S, dtype=torch.float64, device=device)
    correct = torch.zeros(S, dtype=torch.float64 if objective.regression else torch.float32, device=device)
    batch = config.batch_for(len(train))
    for start in range(0, len(train), batch):
        idx = torch.stack([o[start:start + batch] for o in orders])  # (S, b)
        x, y, lengths = train.batch(idx.reshape(-1), device)  # cut to the longest row: exact
        x, y = x.view(S, -1, *x.shape[1:]), y.view(S, -1, *y.shape[1:])
        lengths = None if lengths is None else lengths.view(S, -1)
        if config.input_noise or config.input_mult_noise:  # augmentation, each member from its own generator
            x = augment_inputs(x, lengths, config, noise_gens)
        if explicit:  # Theorem 1's explicit regulariser (eq 18) instead of the noise (S = 1)
            explicit_terms = explicit_regularizer(models[0], x[0], y[0], lengths=None if lengths is None else lengths[0])
            logits = explicit_terms.logits.unsqueeze(0)
            per_member = (explicit_terms.loss + config.regularizer_scale * explicit_terms.penalty.mean()).reshape(1)
        else:
            logits = ens(x, noise=inject, generators=noise_gens, lengths=lengths)
            per_member = objective.loss(logits, y)  # (S,)
        loss = per_member.sum()
        if not math.isfinite(loss.item()):
            bad = [seeds[i] for i in range(S) if not math.isfinite(per_member[i].item())]
            raise TrainingDiverged(f"training loss became {loss.item()} at epoch {epoch} (seed(s) {bad}); "
                                   "lower the learning rate or the step size")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:  # per member: the norm of its own gradient, as in its separate run
            for m in models:
                torch.nn.utils.clip_grad_norm_(m.parameters(), config.grad_clip)
        optimizer.step()
        loss_sum += per_member.detach().double() * idx.shape[1]
        correct += objective.score(logits.detach(), y)
    return loss_sum, correct


def select_epoch(ens, state: LoopState, metrics: list[dict], config: TrainConfig, regression: bool = False) -> None:
    """Append each member's metrics to its history and keep its weights if this epoch is its best
    (on a regression task ``select = "val_accuracy"``, the default, selects on ``val_loss``)."""
    current = ens.state_dict()
    rule = SELECTION["val_loss" if regression and config.select == "val_accuracy" else config.select]
    for i, m in enumerate(metrics):
        state.histories[i].append(m)
        key = rule(m)
        if state.best_keys[i] is None or key > state.best_keys[i]:
            state.best_keys[i], state.best_epochs[i] = key, m["epoch"]
            prefix = f"models.{i}."
            for k, v in current.items():
                if k.startswith(prefix):
                    state.best_state[k].copy_(v)


def commit_epoch(ens, state: LoopState, epoch, optimizer, scheduler, config, seeds, identity, out_dir,
                 member_dirs) -> None:
    """Commit the epoch: one atomic training state (when there is a folder), then the logs."""
    if out_dir is not None:
        info = {"epoch": epoch, "history": state.histories, "best_epoch": state.best_epochs,
                "best_key": [list(k) for k in state.best_keys], "seconds": state.elapsed,
                "train_config": config.to_dict(), "seeds": seeds, "identity": identity}
        save_training_state(out_dir, ens, optimizer, scheduler, state.gens, info, state.best_state)
    write_metrics_logs(member_dirs, state.histories)


def write_metrics_logs(member_dirs, histories) -> None:
    for folder, history in zip(member_dirs, histories):
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / METRICS_LOG, "".join(json.dumps(h) + "\n" for h in history))


def finish(ens, state: LoopState, task: Task, config: TrainConfig, seeds, member_dirs) -> list[TrainResult]:
    """Each member with its selected weights, saved to its folder when there is one."""
    S, results = ens.members, []
    for i, s in enumerate(seeds):
        model = ens.member(i, state.best_state)
        model.eval()
        hist = state.histories[i]
        best = hist[state.best_epochs[i]] if hist else {}
        best_val = best.get("val_accuracy", float("nan"))
        result = TrainResult(model, state.best_epochs[i], best_val, hist, state.elapsed)
        if member_dirs:
            extra = {"train_config": {**config.to_dict(), "seed": s}, "best_epoch": state.best_epochs[i],
                     "best_val_accuracy": best_val, "task": task.name, "data": task.data_spec()}
            if "val_rmse" in best:
                extra = {**extra, "best_val_rmse": best["val_rmse"]}
                del extra["best_val_accuracy"]
            if S > 1:
                extra["trained_as"] = f"member {i} of a {S}-model ensemble"
            save_model(Path(member_dirs[i]), model, extra=extra)
        results.append(result)
    return results
