"""Training settings (:class:`TrainConfig`, each field declared in :mod:`noisyrnn.parameters`),
what a run returns, and the optimizer, generators and device they make."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from ..errors import ConfigError, NoisyRNNError, check_choice

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
        """Check every field against its declaration (:data:`noisyrnn.parameters.TRAIN_PARAMS`),
        converting in place (an integral 10.0 becomes 10); raises ConfigError naming the field."""
        from ..parameters import TRAIN_PARAMS, check_value

        for f in fields(self):
            if f.name in TRAIN_PARAMS and f.name not in ("optimizer", "select", "regularizer"):
                setattr(self, f.name, check_value(f"train.{f.name}", getattr(self, f.name), TRAIN_PARAMS[f.name]))
        check_choice(self.optimizer, set(OPTIMIZERS), "optimizer")
        check_choice(self.select, set(SELECTION), "select")
        if self.select_under is not None:
            from ..perturbations import parse_column

            if self.select_under == "clean":
                raise ConfigError("select_under names a perturbation (e.g. white_0.4); leave it unset for clean")
            parse_column(self.select_under)
        check_choice(self.regularizer, set(REGULARIZERS), "regularizer")

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


REGULARIZERS = ("none", "explicit")

SELECTION = {
    "val_accuracy": lambda m: ((m["val_under"], m["val_accuracy"], -m["val_loss"]) if "val_under" in m
                               else (m["val_accuracy"], -m["val_loss"])),
    "val_loss": lambda m: (-m["val_loss"], m["val_accuracy"]),
    "last": lambda m: (m["epoch"], 0.0),
}
