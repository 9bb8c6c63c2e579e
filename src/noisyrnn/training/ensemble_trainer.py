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
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.files import atomic_write_text
from ..data.task import Task
from ..ensemble import Ensemble
from ..errors import ConfigError
from ..models import build_model
from .progress import EpochProgress
from .checkpoint import has_training_state, load_training_state, save_model, save_training_state
from .trainer import (
    METRICS_LOG, SELECTION, TrainConfig, TrainingDiverged, TrainResult, _generators, make_optimizer, resolve_device,
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
    if getattr(pert, "needs_model", False):
        raise ConfigError(f"select_under={config.select_under!r} is an attack; ensembles select under "
                          "random perturbations only: train the seeds separately")
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
    """Train model ``name`` once per seed in ``seeds``, all in one batched pass.

    Returns one :class:`TrainResult` per seed, each holding that member's selected weights.
    """
    config.validate()
    if config.grad_clip:
        raise ConfigError("grad_clip couples the members of an ensemble; train them separately")
    if config.regularizer != "none":
        raise ConfigError(f"regularizer={config.regularizer!r} is not supported for seed-batched ensembles; "
                          "train the seeds separately")
    seeds = [int(s) for s in seeds]
    models = []
    for s in seeds:  # each member initialised as its separate run (build_model(seed=s)): no global RNG
        models.append(build_model(name, task.input_size, task.num_classes, seed=s, **(params or {})))
    device = resolve_device(config.device)
    ens = Ensemble(models).to(device)
    S = ens.members
    gens = {}
    for i, s in enumerate(seeds):
        g = _generators(s, device)
        gens[f"shuffle{i}"], gens[f"noise{i}"] = g["shuffle"], g["noise"]
    optimizer = make_optimizer(ens, config)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones), config.lr_gamma)
    out_dir = Path(out_dir) if out_dir is not None else None
    histories = [[] for _ in range(S)]
    best_keys, best_epochs = [None] * S, [-1] * S
    best_state = {k: v.detach().clone() for k, v in ens.state_dict().items()}
    start_epoch, elapsed = 0, 0.0
    if out_dir is not None and resume and has_training_state(out_dir):
        info, saved_best = load_training_state(out_dir, ens, optimizer, scheduler, gens)
        histories, best_epochs, elapsed = info["history"], info["best_epoch"], info["seconds"]
        best_keys = [tuple(k) if k else None for k in info["best_key"]]
        best_state = saved_best or best_state
        start_epoch = info["epoch"] + 1
    train = task.train
    inject = bool(config.noise) and ens.injects_noise
    noise_gens = [gens[f"noise{i}"] for i in range(S)]
    val_under = None
    if config.select_under:  # each member's own draws, as in its separate run
        val_under = [perturbed_split(task, config, s) for s in seeds]
    bar = EpochProgress(f"{name} x{S}", start_epoch, config.epochs, progress)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        ens.train()
        orders = [torch.randperm(len(train), generator=gens[f"shuffle{i}"]) for i in range(S)]
        loss_sum = torch.zeros(S, dtype=torch.float64, device=device)
        correct = torch.zeros(S, device=device)
        for start in range(0, len(train), config.batch_size):
            idx = torch.stack([o[start:start + config.batch_size] for o in orders])  # (S, b)
            x, y = train.x[idx].to(device), train.y[idx].to(device)
            lengths = None if train.lengths is None else train.lengths[idx].to(device)
            logits = ens(x, noise=inject, generators=noise_gens, lengths=lengths)
            per_member = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)  # (S,)
            loss = per_member.sum()
            if not math.isfinite(loss.item()):
                bad = [seeds[i] for i in range(S) if not math.isfinite(per_member[i].item())]
                raise TrainingDiverged(f"training loss became non-finite at epoch {epoch} for seed(s) {bad}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += per_member.detach().double() * idx.shape[1]
            correct += (logits.argmax(-1) == y).sum(1)
        scheduler.step()
        ens.eval()
        val = _validate(ens, task.val, config.eval_batch_size)
        if val_under is not None:
            for i, v in enumerate(val):
                v["val_under"] = _validate(ens, val_under[i], config.eval_batch_size)[i]["val_accuracy"]
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
        bar.update({k: sum(h[-1][k] for h in histories) / S for k in histories[0][-1] if k != "epoch"}
                   | {"epoch": epoch})
        if out_dir is not None:
            info = {"epoch": epoch, "history": histories, "best_epoch": best_epochs,
                    "best_key": [list(k) for k in best_keys], "seconds": elapsed,
                    "train_config": config.to_dict(), "seeds": seeds}
            save_training_state(out_dir, ens, optimizer, scheduler, gens, info, best_state)
    bar.close()
    results = []
    for i, s in enumerate(seeds):
        model = ens.member(i, best_state)
        model.eval()
        hist = histories[i]
        best_val = hist[best_epochs[i]]["val_accuracy"] if hist else float("nan")
        result = TrainResult(model, best_epochs[i], best_val, hist, elapsed)
        if member_dirs is not None:
            d = Path(member_dirs[i])
            member_cfg = {**config.to_dict(), "seed": s}
            save_model(d, model, extra={"train_config": member_cfg, "best_epoch": best_epochs[i],
                                        "best_val_accuracy": best_val, "task": task.name,
                                        "data": task.data_spec(),
                                        "trained_as": f"member {i} of a {S}-model ensemble"})
            atomic_write_text(d / METRICS_LOG, "".join(json.dumps(h) + "\n" for h in hist))
        results.append(result)
    return results
