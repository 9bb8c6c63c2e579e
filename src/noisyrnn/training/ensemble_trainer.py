"""Training S models of any registry model as one :class:`~noisyrnn.ensemble.Ensemble` (seed batching).

Each member follows exactly what :func:`noisyrnn.training.fit` does for one model with the
same config and seed: same initialisation, shuffling, noise draws, Adam updates, learning
rate schedule and validation-based model selection. The ensemble's own training state is
checkpointed every epoch (resume), and each member is returned, and saved, as a stand-alone
model.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.files import atomic_write_text
from ..data.task import Task
from ..ensemble import Ensemble
from ..evaluation import evaluate
from ..errors import ConfigError
from ..models import build_model
from .progress import EpochProgress
from .checkpoint import has_training_state, load_training_state, save_model, save_training_state
from .run_folder import prepare_run_folder, run_identity
from ..locking import FolderLock
from ..memory import ensure_fits, training_bytes
from ..theory.explicit import explicit_regularizer
from .trainer import (
    METRICS_LOG, SELECTION, TrainConfig, TrainingDiverged, TrainResult, _generators, make_optimizer, resolve_device,
    validation_under,
)


@torch.no_grad()
def _validate(ens: Ensemble, split, batch_size: int) -> list[dict]:
    S = ens.members
    device = next(ens.parameters()).device
    correct, loss = torch.zeros(S, device=device), torch.zeros(S, dtype=torch.float64, device=device)
    for start in range(0, len(split), batch_size):
        x, y, lengths = split.batch(slice(start, start + batch_size), device)
        logits = ens(x, noise=False, lengths=lengths)  # (S, b, C)
        loss += F.cross_entropy(logits.transpose(1, 2), y.expand(S, -1), reduction="none").sum(1).double()
        correct += (logits.argmax(-1) == y).sum(1)
    n = len(split)
    return [{"val_accuracy": float(correct[s]) / n, "val_loss": float(loss[s]) / n} for s in range(S)]


def perturbed_split(task: Task, config: TrainConfig, seed: int):
    """The validation split under ``config.select_under``, drawn once (as the single-model
    trainer's :func:`~noisyrnn.training.trainer.validation_under` draws it)."""
    from ..data.task import Split
    from ..evaluation import perturbation_seed, real_steps_only
    from ..perturbations import parse_column

    pert = parse_column(config.select_under, task.data_range)
    val = task.val
    out = []
    gen = torch.Generator().manual_seed(perturbation_seed(seed, config.select_under))
    for start in range(0, len(val), config.eval_batch_size):
        x = val.x[start:start + config.eval_batch_size]
        lengths = None if val.lengths is None else val.lengths[start:start + config.eval_batch_size]
        out.append(real_steps_only(pert(x, gen), x, lengths))
    return Split(torch.cat(out), val.y, val.lengths)


def fit_ensemble(name: str, params: dict, task: Task, config: TrainConfig, seeds, out_dir=None,
                 member_dirs=None, resume: bool = True, progress: bool = True) -> list[TrainResult]:
    """Train model ``name`` once per seed in ``seeds``, all in one batched pass (:func:`fit_members`).

    Returns one :class:`TrainResult` per seed, each holding that member's selected weights.
    """
    seeds = [int(s) for s in seeds]
    # each member initialised as its separate run (build_model(seed=s)): no global RNG
    models = [build_model(name, task.input_size, task.num_classes, seed=s, **(params or {})) for s in seeds]
    return fit_members(models, task, config, seeds, out_dir=out_dir, member_dirs=member_dirs, resume=resume,
                       progress=progress, label=f"{name} x{len(seeds)}")


def fit_members(models, task: Task, config: TrainConfig, seeds, out_dir=None, member_dirs=None,
                resume: bool = True, progress: bool = True, log=None, label: str | None = None) -> list[TrainResult]:
    """The one training loop, for S >= 1 models of one architecture trained as one
    :class:`~noisyrnn.ensemble.Ensemble`: member i is trained exactly as a separate run with
    ``seeds[i]`` (its shuffling and noise generators, its Adam state, its model selection on
    validation). :func:`noisyrnn.training.fit` is the case S = 1.

    With ``out_dir`` every epoch writes a resumable training state (and each member's metrics
    log to ``member_dirs[i]``); with ``resume`` an existing state there is continued exactly.
    Each member is saved as a stand-alone model to ``member_dirs[i]``.
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
    device = resolve_device(config.device)
    first = models[0]
    ensure_fits(f"training {S} model(s) of hidden size {first.hidden_size} on batches of "
                f"{min(config.batch_size, len(task.train))} sequences of {task.seq_len} steps",
                training_bytes(first.hidden_size, task.input_size, task.num_classes,
                               min(config.batch_size, len(task.train)), task.seq_len, S),
                hint="lower train.batch_size or params.hidden_size, or give shorter sequences")
    out_dir = Path(out_dir) if out_dir is not None else None
    folders = [Path(d) for d in member_dirs] if member_dirs is not None else []
    with (FolderLock(out_dir, what="training folder") if out_dir is not None else nullcontext()):
        return _fit_owned(models, task, config, seeds, out_dir, folders, resume, progress, log, label, device)


def _fit_owned(models, task, config, seeds, out_dir, member_dirs, resume, progress, log, label, device):
    """:func:`fit_members` once ``out_dir`` (if any) is owned by this process."""
    S = len(models)
    explicit = config.regularizer == "explicit"
    identity = run_identity(models, task, config, seeds) if out_dir is not None else None
    if out_dir is not None:
        prepare_run_folder(out_dir, member_dirs, identity, resume)
    ens = Ensemble(models).to(device)
    gens = {}
    for i, s in enumerate(seeds):
        g = _generators(s, device)
        gens[f"shuffle{i}"], gens[f"noise{i}"] = g["shuffle"], g["noise"]
    optimizer = make_optimizer(ens, config)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones), config.lr_gamma)
    histories = [[] for _ in range(S)]
    best_keys, best_epochs = [None] * S, [-1] * S
    best_state = {k: v.detach().clone() for k, v in ens.state_dict().items()}
    start_epoch, elapsed = 0, 0.0
    if out_dir is not None and has_training_state(out_dir):
        info, saved_best = load_training_state(out_dir, ens, optimizer, scheduler, gens)
        histories, best_epochs, elapsed = info["history"], info["best_epoch"], info["seconds"]
        best_keys = [tuple(k) if k else None for k in info["best_key"]]
        best_state = saved_best or best_state
        start_epoch = info["epoch"] + 1
    train = task.train
    inject = bool(config.noise) and ens.injects_noise
    if explicit and inject:
        raise ConfigError("regularizer='explicit' replaces noise injection: set noise = false")
    noise_gens = [gens[f"noise{i}"] for i in range(S)]
    under = _validation_under(task, config, seeds) if config.select_under else None
    bar = EpochProgress(label or models[0].config.get("name", "train"), start_epoch, config.epochs, progress)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        ens.train()
        orders = [torch.randperm(len(train), generator=gens[f"shuffle{i}"]) for i in range(S)]
        loss_sum = torch.zeros(S, dtype=torch.float64, device=device)
        correct = torch.zeros(S, device=device)
        for start in range(0, len(train), config.batch_size):
            idx = torch.stack([o[start:start + config.batch_size] for o in orders])  # (S, b)
            x, y, lengths = train.batch(idx.reshape(-1), device)  # cut to the longest row: exact
            x, y = x.view(S, -1, *x.shape[1:]), y.view(S, -1)
            lengths = None if lengths is None else lengths.view(S, -1)
            if explicit:  # Theorem 1's explicit regulariser (eq 18) instead of the noise (S = 1)
                objective = explicit_regularizer(models[0], x[0], y[0], lengths=None if lengths is None else lengths[0])
                logits = objective.logits.unsqueeze(0)
                per_member = (objective.loss + config.regularizer_scale * objective.penalty.mean()).reshape(1)
            else:
                logits = ens(x, noise=inject, generators=noise_gens, lengths=lengths)
                per_member = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)  # (S,)
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
            correct += (logits.argmax(-1) == y).sum(1)
        scheduler.step()
        ens.eval()
        val = _validate(ens, task.val, config.eval_batch_size)
        if under is not None:
            for i, v in enumerate(val):
                v["val_under"] = under(ens, i)
        elapsed += time.perf_counter() - t0
        current = ens.state_dict()
        for i in range(S):
            metrics = {"epoch": epoch, "train_loss": float(loss_sum[i]) / len(train),
                       "train_accuracy": float(correct[i]) / len(train), **val[i],
                       "lr": optimizer.param_groups[0]["lr"], "seconds": elapsed}
            histories[i].append(metrics)
            key = SELECTION[config.select](metrics)
            if best_keys[i] is None or key > best_keys[i]:
                best_keys[i], best_epochs[i] = key, epoch
                prefix = f"models.{i}."
                for k, v in current.items():
                    if k.startswith(prefix):
                        best_state[k].copy_(v)
            if log is not None:
                log(metrics)
        bar.update({k: sum(h[-1][k] for h in histories) / S for k in histories[0][-1] if k != "epoch"}
                   | {"epoch": epoch})
        if out_dir is not None:
            info = {"epoch": epoch, "history": histories, "best_epoch": best_epochs,
                    "best_key": [list(k) for k in best_keys], "seconds": elapsed,
                    "train_config": config.to_dict(), "seeds": seeds, "identity": identity}
            save_training_state(out_dir, ens, optimizer, scheduler, gens, info, best_state)
        _write_metrics_logs(member_dirs, histories)
    _write_metrics_logs(member_dirs, histories)  # also after a resume that had no epoch left
    bar.close()
    results = []
    for i, s in enumerate(seeds):
        model = ens.member(i, best_state)
        model.eval()
        hist = histories[i]
        best_val = hist[best_epochs[i]]["val_accuracy"] if hist else float("nan")
        result = TrainResult(model, best_epochs[i], best_val, hist, elapsed)
        if member_dirs:
            extra = {"train_config": {**config.to_dict(), "seed": s}, "best_epoch": best_epochs[i],
                     "best_val_accuracy": best_val, "task": task.name, "data": task.data_spec()}
            if S > 1:
                extra["trained_as"] = f"member {i} of a {S}-model ensemble"
            save_model(Path(member_dirs[i]), model, extra=extra)
        results.append(result)
    return results


def _write_metrics_logs(member_dirs, histories) -> None:
    for folder, history in zip(member_dirs, histories):
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / METRICS_LOG, "".join(json.dumps(h) + "\n" for h in history))


def _validation_under(task: Task, config: TrainConfig, seeds):
    """under(ens, i): member i's validation accuracy under ``config.select_under``, the same
    draws every epoch (random perturbations drawn once per member; attacks run on the member)."""
    from ..perturbations import parse_column

    pert = parse_column(config.select_under, task.data_range)
    if getattr(pert, "needs_model", False):
        configs = [TrainConfig(**{**config.to_dict(), "seed": s}) for s in seeds]
        return lambda ens, i: validation_under(ens.models[i], task, configs[i])
    splits = [perturbed_split(task, config, s) for s in seeds]
    return lambda ens, i: evaluate(ens.models[i], splits[i], config.eval_batch_size)["accuracy"]
