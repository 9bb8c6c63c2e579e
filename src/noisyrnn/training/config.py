"""Training settings (:class:`TrainConfig`, each field declared in :mod:`noisyrnn.parameters`),
what a run returns, and the optimizer, generators and device they make."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from ..errors import ConfigError, NoisyRNNError
from ..parameters import TRAIN_PARAMS, auto_batch_size, check_value, decay_milestones

METRICS_LOG = "metrics.jsonl"
OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}  # TRAIN_PARAMS["optimizer"].choices
_DEFAULT = {name: rule.default for name, rule in TRAIN_PARAMS.items()}


class TrainingDiverged(NoisyRNNError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Optimisation settings. ``noise`` turns noise injection on during training (it is
    always off for validation and test); ``lr_milestones`` are epochs at which the learning
    rate is multiplied by ``lr_gamma`` (unset: :attr:`milestones`, at 90% of the epochs). ``select`` picks the returned epoch on the validation
    split: ``val_accuracy`` (ties broken by lower loss), ``val_loss``, or ``last``;
    ``select_under`` (a perturbation column such as ``white_0.4``) makes ``val_accuracy`` mean
    the validation accuracy under that perturbation (fixed draws; ties broken by clean accuracy),
    for users who know their sensor noise.
    ``regularizer = "explicit"`` adds ``regularizer_scale`` times Theorem 1's explicit
    regulariser R_hat (eq 18) for the model's noise scheme to the loss: the deterministic
    alternative to noise injection (set ``noise = false`` with it)."""

    # each field's type, range and default are declared once, in noisyrnn.parameters.TRAIN_PARAMS
    epochs: int = _DEFAULT["epochs"]
    batch_size: int | str = _DEFAULT["batch_size"]
    optimizer: str = _DEFAULT["optimizer"]
    lr: float = _DEFAULT["lr"]
    orthogonal_lr: float | None = _DEFAULT["orthogonal_lr"]
    lr_milestones: list[int] | None = _DEFAULT["lr_milestones"]
    lr_gamma: float = _DEFAULT["lr_gamma"]
    weight_decay: float = _DEFAULT["weight_decay"]
    grad_clip: float | None = _DEFAULT["grad_clip"]
    noise: bool = _DEFAULT["noise"]
    input_noise: float | list[float] = _DEFAULT["input_noise"]
    input_mult_noise: float | list[float] = _DEFAULT["input_mult_noise"]
    select: str = _DEFAULT["select"]
    select_under: str | None = _DEFAULT["select_under"]
    regularizer: str = _DEFAULT["regularizer"]
    regularizer_scale: float = _DEFAULT["regularizer_scale"]
    device: str = _DEFAULT["device"]
    seed: int = _DEFAULT["seed"]
    eval_batch_size: int = _DEFAULT["eval_batch_size"]

    @property
    def milestones(self) -> list[int]:
        """The epochs at which the learning rate decays: ``lr_milestones``, or, unset, the one
        rule :func:`noisyrnn.parameters.decay_milestones` (x ``lr_gamma`` at 90% of the epochs)."""
        return decay_milestones(self.epochs) if self.lr_milestones is None else list(self.lr_milestones)

    def batch_for(self, n_train: int) -> int:
        """Sequences per update on a training split of ``n_train``: ``batch_size``, or for
        ``"auto"`` :func:`noisyrnn.parameters.auto_batch_size`; never more than ``n_train``."""
        batch = auto_batch_size(n_train) if self.batch_size == "auto" else int(self.batch_size)
        return max(1, min(batch, int(n_train)))

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
        """Check every field against its declaration (:data:`noisyrnn.parameters.TRAIN_PARAMS`),
        converting in place (an integral 10.0 becomes 10); raises ConfigError naming the field."""
        for f in fields(self):
            setattr(self, f.name, check_value(f"train.{f.name}", getattr(self, f.name), TRAIN_PARAMS[f.name]))
        if self.select_under is not None:
            from ..perturbations import parse_column

            if self.select_under == "clean":
                raise ConfigError("select_under names a perturbation (e.g. white_0.4); leave it unset for clean")
            parse_column(self.select_under)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: torch.nn.Module  # holds the selected (best-validation) weights
    best_epoch: int
    best_val_accuracy: float
    history: list[dict]
    seconds: float
    members: list | None = None  # a seed ensemble's per-member results (train_model's n_members)


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


def generators(seed: int, device="cpu") -> dict[str, torch.Generator]:
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


SELECTION = {  # TRAIN_PARAMS["select"].choices
    "val_accuracy": lambda m: ((m["val_under"], m["val_accuracy"], -m["val_loss"]) if "val_under" in m
                               else (m["val_accuracy"], -m["val_loss"])),
    "val_loss": lambda m: (-m["val_loss"], m.get("val_accuracy", 0.0)),  # no accuracy: a regression task
    "last": lambda m: (m["epoch"], 0.0),
}
