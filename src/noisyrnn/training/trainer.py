"""Training: Adam with a step learning-rate schedule, model selection on validation only,
atomic checkpoints every epoch, exact resume, a progress bar and a JSONL metrics log."""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.files import atomic_write_text
from ..data.task import Task
from ..errors import ConfigError, NoisyRNNError, check_choice, check_positive
from ..evaluation import evaluate
from ..models import build_model
from ..theory.explicit import explicit_regularizer
from .progress import EpochProgress
from .checkpoint import has_training_state, load_training_state, save_model, save_training_state

METRICS_LOG = "metrics.jsonl"
OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}


class TrainingDiverged(NoisyRNNError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Optimisation settings. ``noise`` turns noise injection on during training (it is
    always off for validation and test); ``lr_milestones`` are epochs at which the learning
    rate is multiplied by ``lr_gamma``. ``select`` picks the returned epoch on the validation
    split: ``val_accuracy`` (ties broken by lower loss), ``val_loss``, or ``last``;
    ``select_under`` (a perturbation column such as ``white_0.4``) makes ``val_accuracy`` mean
    the validation accuracy under that perturbation (fixed draws; ties broken by clean accuracy),
    for users who know their sensor noise.
    ``regularizer = "explicit"`` adds ``regularizer_scale`` times Theorem 1's explicit
    regulariser R_hat (eq 18) for the model's noise scheme to the loss: the deterministic
    alternative to noise injection (set ``noise = false`` with it)."""

    epochs: int = 100
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 0.003
    orthogonal_lr: float | None = None
    lr_milestones: list[int] = field(default_factory=lambda: [90])
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float | None = None
    noise: bool = True
    select: str = "val_accuracy"
    select_under: str | None = None
    regularizer: str = "none"
    regularizer_scale: float = 1.0
    device: str = "cpu"
    seed: int = 0
    eval_batch_size: int = 1000

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d or {}) - known
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        cfg = cls(**(d or {}))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        check_positive(self.lr, "lr")
        check_choice(self.optimizer, set(OPTIMIZERS), "optimizer")
        check_choice(self.select, set(SELECTION), "select")
        if self.select_under is not None:
            from ..perturbations import parse_column

            if self.select_under == "clean":
                raise ConfigError("select_under names a perturbation (e.g. white_0.4); leave it unset for clean")
            parse_column(self.select_under)
        check_choice(self.regularizer, set(REGULARIZERS), "regularizer")
        check_positive(self.regularizer_scale, "regularizer_scale", allow_zero=True)
        if self.orthogonal_lr is not None:
            check_positive(self.orthogonal_lr, "orthogonal_lr")
        check_positive(self.lr_gamma, "lr_gamma")
        check_positive(self.weight_decay, "weight_decay", allow_zero=True)
        if self.grad_clip is not None:
            check_positive(self.grad_clip, "grad_clip")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: torch.nn.Module  # holds the selected (best-validation) weights
    best_epoch: int
    best_val_accuracy: float
    history: list[dict]
    seconds: float


def make_optimizer(model, config: "TrainConfig") -> torch.optim.Optimizer:
    """The configured optimizer; an orthogonal recurrent map gets ``orthogonal_lr`` if set."""
    get_orth = getattr(model, "orthogonal_parameters", None)
    orth = get_orth() if (get_orth is not None and config.orthogonal_lr is not None) else []
    orth_ids = {id(p) for p in orth}
    rest = [p for p in model.parameters() if id(p) not in orth_ids]
    groups = [{"params": rest, "lr": config.lr}]
    if orth:
        groups.append({"params": orth, "lr": config.orthogonal_lr})
    return OPTIMIZERS[config.optimizer](groups, lr=config.lr, weight_decay=config.weight_decay)


def _generators(seed: int, device="cpu") -> dict[str, torch.Generator]:
    """Shuffling stays on the CPU (indices); noise is drawn on the model's device."""
    return {
        "shuffle": torch.Generator().manual_seed(int(seed) * 2 + 1),
        "noise": torch.Generator(device=device).manual_seed(int(seed) * 2 + 2),
    }


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch.cuda.is_available() is False")
    return device


REGULARIZERS = ("none", "explicit")

SELECTION = {
    "val_accuracy": lambda m: ((m["val_under"], m["val_accuracy"], -m["val_loss"]) if "val_under" in m
                               else (m["val_accuracy"], -m["val_loss"])),
    "val_loss": lambda m: (-m["val_loss"], m["val_accuracy"]),
    "last": lambda m: (m["epoch"], 0.0),
}


def validation_under(model, task: Task, config: TrainConfig) -> float:
    """Validation accuracy under ``config.select_under``, the same draws every epoch."""
    from ..evaluation import robustness

    column = config.select_under
    return robustness(model, task.val, [column], seed=config.seed, batch_size=config.eval_batch_size,
                      value_range=task.data_range)[column]


def fit(model, task: Task, config: TrainConfig, out_dir: Path | None = None, resume: bool = True,
        progress: bool = True, log=None) -> TrainResult:
    """Train ``model`` on ``task.train``, selecting the epoch with the best validation accuracy.

    With ``out_dir`` every epoch writes a resumable training state and the metrics log,
    and the selected model is saved as ``out_dir/model.safetensors``; with ``resume`` an
    existing state in ``out_dir`` is continued exactly (same weights, optimizer, RNG).
    """
    config.validate()
    device = resolve_device(config.device)
    model.to(device)
    out_dir = Path(out_dir) if out_dir is not None else None
    gens = _generators(config.seed, device)
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones), config.lr_gamma)
    history: list[dict] = []
    best_state, best_key, best_epoch, start_epoch, elapsed = None, None, -1, 0, 0.0
    if out_dir is not None and resume and has_training_state(out_dir):
        info, best_state = load_training_state(out_dir, model, optimizer, scheduler, gens)
        history, best_epoch, elapsed = info["history"], info["best_epoch"], info["seconds"]
        best_key = tuple(info["best_key"]) if info["best_key"] else None
        start_epoch = info["epoch"] + 1
    train = task.train
    inject = bool(config.noise) and getattr(model, "injects_noise", False)
    explicit = config.regularizer == "explicit"
    if explicit and inject:
        raise ConfigError("regularizer='explicit' replaces noise injection: set noise = false")
    bar = EpochProgress(model.config.get("name", "train"), start_epoch, config.epochs, progress)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=gens["shuffle"])
        loss_sum, correct = 0.0, 0
        for start in range(0, len(train), config.batch_size):
            idx = order[start:start + config.batch_size]
            x, y, lengths = train.batch(idx, device)
            if explicit:
                objective = explicit_regularizer(model, x, y, lengths=lengths)
                logits = objective.logits
                loss = objective.loss + config.regularizer_scale * objective.penalty.mean()
            else:
                logits = model(x, noise=inject, generator=gens["noise"], lengths=lengths)
                loss = F.cross_entropy(logits, y)
            if not math.isfinite(loss.item()):
                raise TrainingDiverged(f"training loss became {loss.item()} at epoch {epoch}; "
                                       "lower the learning rate or the step size")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
        scheduler.step()
        model.eval()
        val = evaluate(model, task.val, config.eval_batch_size)
        elapsed += time.perf_counter() - t0
        metrics = {
            "epoch": epoch, "train_loss": loss_sum / len(train), "train_accuracy": correct / len(train),
            "val_loss": val["loss"], "val_accuracy": val["accuracy"],
            "lr": optimizer.param_groups[0]["lr"], "seconds": elapsed,
        }
        if config.select_under:
            metrics["val_under"] = validation_under(model, task, config)
        history.append(metrics)
        key = SELECTION[config.select](metrics)
        if best_key is None or key > best_key:
            best_key, best_epoch, best_state = key, epoch, copy.deepcopy(model.state_dict())
        bar.update(metrics)
        if log is not None:
            log(metrics)
        if out_dir is not None:
            info = {"epoch": epoch, "history": history, "best_epoch": best_epoch,
                    "best_key": list(best_key), "seconds": elapsed, "train_config": config.to_dict()}
            save_training_state(out_dir, model, optimizer, scheduler, gens, info, best_state)
            atomic_write_text(out_dir / METRICS_LOG, "".join(json.dumps(h) + "\n" for h in history))
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    best_val = history[best_epoch]["val_accuracy"] if history else float("nan")
    result = TrainResult(model, best_epoch, best_val, history, elapsed)
    if out_dir is not None:
        save_model(out_dir, model, extra={"train_config": config.to_dict(), "best_epoch": best_epoch,
                                          "best_val_accuracy": result.best_val_accuracy, "task": task.name,
                                          "data": task.data_spec()})
    return result


def train_model(name: str, params: dict, task: Task, config: TrainConfig, out_dir=None,
                resume: bool = True, progress: bool = True) -> TrainResult:
    """Seed, build model ``name`` for ``task`` and :func:`fit` it."""
    if task.input_size < 1:
        raise ConfigError(f"task {task.name!r} has no input channels")
    model = build_model(name, task.input_size, task.num_classes, seed=config.seed, **(params or {}))
    return fit(model, task, config, out_dir=out_dir, resume=resume, progress=progress)
