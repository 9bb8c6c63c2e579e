"""One declaration per setting (type, range, default, help): every boundary reads it.

The command line (``--set``, ``noisyrnn settings``, ``train --help``), TOML recipes and sweeps,
``model.json`` checkpoints and the scikit-learn estimator all hand their values to
:func:`check_value` (through :func:`~noisyrnn.models.registry.resolve_params` and
:class:`~noisyrnn.training.TrainConfig`, whose field defaults are the ``default`` declared
here), so a value of the wrong type or out of range gets one message naming the setting, the
rule and the value, wherever it came from. A model's parameter defaults differ between models:
each model declares its own in :data:`noisyrnn.models.registry.DEFAULTS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class Param:
    """A setting's rule. ``kind``: ``int``, ``float``, ``bool``, ``str``, ``"epochs"`` (a list
    of integers >= 1), ``"level"`` (a number or a [low, high] range) or ``"batch"`` (an integer
    >= 1 or ``"auto"``, :func:`auto_batch_size`); ``low``/``high``: inclusive bounds (``low_open``: strictly above ``low``);
    ``choices``: the allowed strings; ``optional``: None is allowed; ``default``: the value
    when none is given (training options; a model parameter's default is the model's)."""

    kind: object
    help: str = ""
    default: object = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False

    def describe(self) -> str:
        if self.kind == "level":
            return "a number >= 0, or [low, high] with 0 <= low <= high (drawn uniformly per batch)"
        if self.kind == "batch":
            return "an integer >= 1, or 'auto' (min(16, n_train // 10), at least 1)"
        if self.kind == "epochs":
            return "a list of epochs (integers >= 1), e.g. [90], or []" + (" (or null)" if self.optional else "")
        if self.kind is bool:
            return "true or false"
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is str:
            return "a string"
        what = "an integer" if self.kind is int else "a finite number"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        text = what + (" " + " and ".join(bounds) if bounds else "")
        return text + (" (or null)" if self.optional else "")


def _integer(value):
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def _number(value, rule: Param):
    """An int (``rule.kind is int``) or finite float within the rule's bounds, else None."""
    if rule.kind is int:
        out = _integer(value)
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        out = None
    else:
        out = float(value) if math.isfinite(float(value)) else None
    if out is None:
        return None
    if rule.low is not None and (out < rule.low or (rule.low_open and out == rule.low)):
        return None
    if rule.high is not None and out > rule.high:
        return None
    return out


def _level(value, rule: Param):
    """A noise level: a number >= 0, or ``[low, high]`` with 0 <= low <= high."""
    number = Param(float, low=0.0)
    if isinstance(value, (list, tuple)):
        bounds = [_number(v, number) for v in value]
        if len(bounds) != 2 or None in bounds or bounds[0] > bounds[1]:
            return None
        return bounds
    return _number(value, number)


def _batch(value, rule: Param):
    """A batch size: an integer >= 1, or "auto"."""
    if value == "auto":
        return value
    out = _integer(value)
    return out if out is not None and out >= 1 else None


def _epochs(value, rule: Param):
    """A list of epochs, each an integer >= 1."""
    if not isinstance(value, (list, tuple)):
        return None
    out = [_integer(v) for v in value]
    return None if any(v is None or v < 1 for v in out) else out


def _bool(value, rule: Param):
    return bool(value) if isinstance(value, (bool, np.bool_)) else None


def _str(value, rule: Param):
    ok = isinstance(value, str) and (rule.choices is None or value in rule.choices)
    return value if ok else None


_CONVERTERS = {"level": _level, "batch": _batch, "epochs": _epochs, bool: _bool, str: _str}


def check_value(name: str, value, rule: Param):
    """``value`` converted to the rule's type, or a :class:`ConfigError` naming ``name``."""
    if value is None and rule.optional:
        return None
    out = _CONVERTERS.get(rule.kind, _number)(value, rule)
    if out is None:
        raise ConfigError(f"{name} must be {rule.describe()}, got {value!r}")
    return out


POSITIVE = dict(low=0.0, low_open=True)
NONNEGATIVE = dict(low=0.0)

# Model parameters, by name; which ones a model takes, and their defaults, are the registry's
# (models.registry.DEFAULTS); the noise levels' defaults here apply when a setting switches noise on.
MODEL_PARAMS: dict[str, Param] = {
    "hidden_size": Param(int, "hidden state size N", low=1),
    "patch": Param(int, "samples per step: the series is read in windows of k consecutive samples, ceil(T/k) "
                   "steps of k x d_x channels (every model)", low=1, default=1),
    "beta": Param(float, "Lipschitz RNN: skew-symmetric share of A and W (eq 3)", low=0.0, high=1.0),
    "gamma_a": Param(float, "Lipschitz RNN: diagonal shift of A", **NONNEGATIVE),
    "gamma_w": Param(float, "Lipschitz RNN: diagonal shift of W", **NONNEGATIVE),
    "alpha": Param(float, "Lipschitz RNN: scale of the drift's linear part"),
    "init_std": Param(float, "standard deviation of the recurrent weights' initialisation", **POSITIVE),
    "step": Param(float, "Euler-Maruyama step size (eq 5)", **POSITIVE),
    "learn_step": Param(bool, "learn the step size"),
    "gamma": Param(float, "antisymmetric RNN: diffusion gamma; coRNN: gamma", **NONNEGATIVE),
    "epsilon": Param(float, "coRNN: damping epsilon", **NONNEGATIVE),
    "dt": Param(float, "coRNN: step dt", **POSITIVE),
    "noise": Param(str, "hidden-state noise setting (eq 5)", choices=("none", "research", "sde"), default="none"),
    "mult_noise": Param(float, "multiplicative noise level (research parametrisation)", default=0.0, **NONNEGATIVE),
    "add_noise": Param(float, "additive noise level (research parametrisation)", default=0.0, **NONNEGATIVE),
    "noise_eps": Param(float, "noise scale epsilon of eq (4)", default=1.0, **NONNEGATIVE),
    "sigma1": Param(float, "additive diffusion sigma_1 of eq (4)", default=0.0, **NONNEGATIVE),
    "sigma2": Param(float, "multiplicative diffusion sigma_2 of eq (4)", default=0.0, **NONNEGATIVE),
}

MAX_EPOCHS = 1_000_000
AUTO_BATCH_CAP = 16


def auto_batch_size(n_train: int) -> int:
    """``train.batch_size = "auto"``: a tenth of the training sequences, at most 16 and at least 1
    (``int(min(n / 10, 16))``, the rule of Fawaz et al.'s deep-learning bake-off on the UCR
    archive, 2019): a training set of 40 sequences gets batches of 4, ten updates per epoch
    rather than two of 32."""
    return max(1, min(int(n_train) // 10, AUTO_BATCH_CAP))



def decay_milestones(epochs: int) -> list[int]:
    """The one learning-rate rule: x ``lr_gamma`` once, at 90% of the epochs (the paper's
    recipes decay at epoch 90 of 100); none for a single epoch. It applies wherever
    ``lr_milestones`` is left unset."""
    return [int(0.9 * epochs)] if epochs > 1 else []


# Training options: the fields of noisyrnn.training.TrainConfig, with the library's defaults
# (what `noisyrnn train --model M` and the estimators use when no recipe names them: small user
# datasets need many updates, hence 200 epochs of batches of 32). A model that needs other
# training settings declares them in models.registry.TRAIN_OVERRIDES; the paper's recipes
# (configs/TASK/MODEL.toml) name theirs.
TRAIN_PARAMS: dict[str, Param] = {
    "epochs": Param(int, "passes over the training split", low=1, high=MAX_EPOCHS, default=200),
    "batch_size": Param("batch", "sequences per update; 'auto': a tenth of the training split, 1 to 16 "
                                 "(many updates on small training sets)", default=32),
    "optimizer": Param(str, "optimizer", choices=("adam", "rmsprop"), default="adam"),
    "lr": Param(float, "learning rate", default=0.003, **POSITIVE),
    "orthogonal_lr": Param(float, "learning rate of an orthogonal recurrent map (expRNN); unset: lr",
                           optional=True, **POSITIVE),
    "lr_milestones": Param("epochs", "epochs at which the learning rate is multiplied by lr_gamma; unset: once, "
                                     "at 90% of the epochs", optional=True),
    "lr_gamma": Param(float, "learning-rate decay factor", default=0.1, **POSITIVE),
    "weight_decay": Param(float, "L2 weight decay", default=0.0, **NONNEGATIVE),
    "grad_clip": Param(float, "gradient-norm clip per model; unset: none", optional=True, **POSITIVE),
    "noise": Param(bool, "inject the model's hidden-state noise during training (never at evaluation)",
                   default=True),
    "input_noise": Param("level", "input augmentation: additive Gaussian noise of this std on the (normalised) "
                                  "inputs' real steps in training, never at evaluation; [low, high]: drawn per batch",
                         default=0.0),
    "input_mult_noise": Param("level", "input augmentation: multiplicative noise x (1 + std N(0, 1)) on the inputs' "
                                       "real steps in training; [low, high]: drawn per batch", default=0.0),
    "select": Param(str, "which epoch to keep, judged on the validation split",
                    choices=("val_accuracy", "val_loss", "last"), default="val_accuracy"),
    "select_under": Param(str, "perturbation column (e.g. white_0.4) under which val_accuracy is judged; "
                               "unset: clean", optional=True),
    "regularizer": Param(str, "Theorem 1's explicit regulariser (eq 18) in the loss instead of noise",
                         choices=("none", "explicit"), default="none"),
    "regularizer_scale": Param(float, "weight of the explicit regulariser", default=1.0, **NONNEGATIVE),
    "device": Param(str, "torch device", default="cpu"),
    "seed": Param(int, "random seed", low=0, default=0),
    "eval_batch_size": Param(int, "sequences per evaluation batch", low=1, default=1000),
}


def describe_settings(rules: dict[str, Param], prefix: str, defaults: dict | None = None) -> list[str]:
    """One line per setting: ``prefix`` + name, its rule, default and help (for ``--help`` and
    ``noisyrnn settings``); ``defaults`` (a model's) replace the declared ones."""
    lines = []
    for name, rule in rules.items():
        default = (defaults or {}).get(name, rule.default)
        shown = "unset" if default is None else spelled(default)
        lines.append(f"{prefix}{name}: {rule.describe()}; default {shown}. {rule.help}")
    return lines


def spelled(value) -> str:
    """A value as TOML and ``--set`` spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(spelled(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_params(values: dict, rules: dict[str, Param], prefix: str = "") -> dict:
    """``values`` with every declared key checked and converted (undeclared keys pass through)."""
    return {k: (check_value(prefix + k, v, rules[k]) if k in rules else v) for k, v in values.items()}
