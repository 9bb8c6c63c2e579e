"""Build models by name from plain config dicts (what config files and checkpoints store).

Names: ``nrnn`` (the paper's NRNN: drift eq (3), noise injected in training),
``nrnn_explicit`` (the same model trained with the explicit regulariser of eq (18)),
``lipschitz`` (the same drift, deterministic: the Lipschitz RNN) and the baselines
``antisymmetric``, ``antisymmetric_gated``, ``cornn``, ``exprnn``, ``lstm``, ``gru``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..dynamics import LipschitzDrift
from ..errors import ConfigError, check_choice
from ..memory import ensure_fits, model_bytes
from ..parameters import MODEL_PARAMS, check_params
from .baselines import AntisymmetricDrift, CoRNNDrift, ExpRNNDrift, TorchRNNClassifier
from .noise_settings import ALL_NOISE_KEYS, noise_scheme, noise_setting
from .recurrent import RecurrentClassifier, RecurrentRegressor

DRIFT_KEYS = ("hidden_size", "beta", "gamma_a", "gamma_w", "alpha", "init_std")

DEFAULTS: dict[str, dict[str, Any]] = {  # nrnn_high: the paper's higher-noise NRNN row
    # the Lipschitz family's defaults are the paper's ECG5000 recipe (configs/ecg/*.toml)
    "lipschitz": dict(
        hidden_size=128, beta=0.75, gamma_a=0.1, gamma_w=0.1, alpha=1.0, init_std=0.1,
        step=0.1, learn_step=False, noise="none",
    ),
    "nrnn": dict(
        hidden_size=128, beta=0.75, gamma_a=0.1, gamma_w=0.1, alpha=1.0, init_std=0.1,
        step=0.1, learn_step=True,
        noise="research", mult_noise=0.03, add_noise=0.06,  # research-code parametrisation
    ),
    "antisymmetric": dict(hidden_size=128, gamma=0.01, init_std=1.0, step=0.01, noise="none"),
    "antisymmetric_gated": dict(hidden_size=128, gamma=0.01, init_std=1.0, step=0.01, noise="none"),
    "cornn": dict(hidden_size=128, dt=0.042, gamma=2.7, epsilon=4.7, noise="none"),
    "exprnn": dict(hidden_size=128, noise="none"),
    "lstm": dict(hidden_size=128, noise="none"),
    "gru": dict(hidden_size=128, noise="none"),
}
# Which noise settings each model takes (models/noise_settings.py): the NRNN family is defined
# by its noise; LSTM/GRU are discrete gated cells with no SDE form here, so they take none.
NOISE_ALLOWED = {"nrnn": ("research", "sde"), "nrnn_high": ("research", "sde"), "nrnn_explicit": ("research", "sde"),
                 "lstm": ("none",), "gru": ("none",)}


def _lipschitz_family(input_size: int, p: dict) -> dict:
    drift = LipschitzDrift(input_size, **{k: p[k] for k in DRIFT_KEYS})
    return dict(drift=drift, step=p["step"], learn_step=bool(p["learn_step"]), scheme=noise_scheme(p))


def _antisymmetric(input_size: int, p: dict, gated: bool) -> dict:
    drift = AntisymmetricDrift(input_size, p["hidden_size"], p["gamma"], gated, p["init_std"])
    return dict(drift=drift, step=p["step"], scheme=noise_scheme(p))


def _cornn(input_size: int, p: dict) -> dict:
    drift = CoRNNDrift(input_size, p["hidden_size"], p["dt"], p["gamma"], p["epsilon"])
    return dict(drift=drift, step=p["dt"], scheme=noise_scheme(p))


def _exprnn(input_size: int, p: dict) -> dict:
    return dict(drift=ExpRNNDrift(input_size, p["hidden_size"]), step=1.0, scheme=noise_scheme(p))


# Each drift model's recurrence: name -> (input_size, resolved params) -> the keyword arguments of
# models.recurrent.Recurrence (drift, step, learn_step, scheme). The classifiers, regressors and
# the layers of noisyrnn.nn are built on them.
RECURRENCES: dict[str, Callable[[int, dict], dict]] = {
    "lipschitz": _lipschitz_family,
    "nrnn": _lipschitz_family,
    "nrnn_high": _lipschitz_family,
    "nrnn_explicit": _lipschitz_family,
    "antisymmetric": lambda d, p: _antisymmetric(d, p, gated=False),
    "antisymmetric_gated": lambda d, p: _antisymmetric(d, p, gated=True),
    "cornn": _cornn,
    "exprnn": _exprnn,
}


def _classifier(name: str, input_size: int, num_classes: int, p: dict) -> nn.Module:
    patch = p.get("patch", 1)
    return RecurrentClassifier(num_classes=num_classes, patch=patch, **RECURRENCES[name](input_size * patch, p))


def _torch_rnn(name: str, input_size: int, num_classes: int, p: dict) -> nn.Module:
    return TorchRNNClassifier(name, input_size, p["hidden_size"], num_classes, patch=p.get("patch", 1))


BUILDERS: dict[str, Callable[[str, int, int, dict], nn.Module]] = {
    **{name: _classifier for name in RECURRENCES if name != "nrnn_explicit"},
    "lstm": _torch_rnn,
    "gru": _torch_rnn,
}
DEFAULTS["nrnn_high"] = {**DEFAULTS["nrnn"], "add_noise": 0.2}  # the stronger ECG noise level (sweep ecg_noise_levels)
# nrnn_explicit: the NRNN's model and noise scheme, trained with Theorem 1's explicit
# regulariser (TrainConfig.regularizer = "explicit") instead of injecting the noise.
DEFAULTS["nrnn_explicit"] = dict(DEFAULTS["nrnn"])
BUILDERS["nrnn_explicit"] = _classifier
MODEL_NAMES = tuple(BUILDERS)

# The training settings a model needs over the declared defaults (noisyrnn.parameters.TRAIN_PARAMS),
# where no recipe or config file names them: expRNN's orthogonal map has its own lr; nrnn_explicit
# is trained with the explicit regulariser instead of noise.
TRAIN_OVERRIDES: dict[str, dict[str, Any]] = {
    "exprnn": dict(lr=0.001, orthogonal_lr=0.0001),
    "nrnn_explicit": dict(regularizer="explicit", noise=False),
}


# Parameters every model takes besides its own (DEFAULTS), left out of the resolved parameters
# at their default, so that configs, checkpoints and run identities written before they existed
# stay equal: patch (models/windows.py).
COMMON_PARAMS = ("patch",)


def resolve_params(name: str, params: dict | None = None, legacy: bool = False) -> dict:
    """The model's default parameters updated by ``params``: unknown keys, keys of a noise
    setting the model does not use and noise settings that inject nothing are errors
    (:mod:`noisyrnn.models.noise_settings`). ``legacy``: parameters read from an older checkpoint,
    which stored every noise scheme's keys; those of unused schemes are dropped."""
    check_choice(name, set(BUILDERS), "model")
    params = dict(params or {})
    defaults = DEFAULTS[name]
    model_keys = [k for k in defaults if k != "noise" and k not in ALL_NOISE_KEYS] + list(COMMON_PARAMS)
    allowed = NOISE_ALLOWED.get(name, ("none", "research", "sde"))
    noise_keys = ("noise",) + (ALL_NOISE_KEYS if allowed != ("none",) else ())
    for key in params:
        if key not in model_keys and key not in noise_keys:
            known = model_keys + list(noise_keys)
            raise ConfigError(f"unknown parameter {key!r} for model {name!r}; known: {', '.join(sorted(known))}")
    merged = check_params({k: params.get(k, defaults.get(k, MODEL_PARAMS[k].default)) for k in model_keys},
                          MODEL_PARAMS, "params.")
    for key in COMMON_PARAMS:
        if merged[key] == MODEL_PARAMS[key].default:
            del merged[key]
    merged.update(noise_setting(name, defaults, params, legacy=legacy, allowed=allowed))
    return merged


def build_model(name: str, input_size: int, num_classes: int, _legacy: bool = False, *, seed: int | None = None,
                generator: torch.Generator | None = None, **params) -> nn.Module:
    """Build model ``name`` for inputs with ``input_size`` features and ``num_classes`` classes.

    Initialisation: with ``seed`` (or a ``generator``, from which one seed is drawn) the
    parameters are drawn under a forked RNG seeded with it, so the caller's global RNG is left
    as it was and the same seed gives the same model (``seed=s`` gives the weights that
    ``torch.manual_seed(s)`` before building gave); without either, from torch's global RNG,
    as any ``nn.Module``."""
    p = resolve_params(name, params, legacy=_legacy)
    ensure_fits(f"model {name!r} with hidden_size {p['hidden_size']}",
                model_bytes(p["hidden_size"], input_size, num_classes), hint="lower params.hidden_size")
    if generator is not None:
        if seed is not None:
            raise ConfigError("build_model takes seed or generator, not both")
        seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    if seed is None:
        model = BUILDERS[name](name, int(input_size), int(num_classes), p)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = BUILDERS[name](name, int(input_size), int(num_classes), p)
    model.config = {"name": name, "input_size": int(input_size), "num_classes": int(num_classes), "params": p}
    return model


def build_regressor(name: str, input_size: int, num_outputs: int, *, per_step: bool = False,
                    seed: int | None = None, **params) -> nn.Module:
    """A drift model ``name`` as a :class:`~noisyrnn.models.recurrent.RecurrentRegressor` with
    ``num_outputs`` real outputs (a head on the last state, or with ``per_step`` on every
    state); initialised as :func:`build_model` does (``seed``)."""
    if name not in RECURRENCES:
        raise ConfigError(f"model {name!r} has no regression head; regression takes the drift models: "
                          f"{', '.join(RECURRENCES)}")
    p = resolve_params(name, params)
    patch = p.get("patch", 1)  # RecurrentRegressor refuses windows with per-step outputs
    ensure_fits(f"model {name!r} with hidden_size {p['hidden_size']}",
                model_bytes(p["hidden_size"], input_size, num_outputs), hint="lower params.hidden_size")

    def make():
        return RecurrentRegressor(num_outputs=int(num_outputs), per_step=bool(per_step), patch=patch,
                                  **RECURRENCES[name](int(input_size) * patch, p))

    if seed is None:
        model = make()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = make()
    model.config = {"name": name, "input_size": int(input_size), "num_outputs": int(num_outputs),
                    "head": "per_step" if per_step else "regression", "params": p}
    return model


def model_from_config(config: dict) -> nn.Module:
    """Rebuild a model from the ``config`` dict a built model carries (and checkpoints store)."""
    from ..parameters import Param, check_value

    if not isinstance(config, dict):
        raise ConfigError(f"model config must be a table, got {type(config).__name__}")
    if "members" in config:  # a seed ensemble (models/averaged.py)
        from .averaged import AveragedMembers

        if not isinstance(config["members"], list) or len(config["members"]) < 2:
            raise ConfigError("a model config's 'members' must list at least two member configs")
        return AveragedMembers([model_from_config(c) for c in config["members"]])
    if config.get("head") in ("regression", "per_step"):
        if not isinstance(config.get("num_outputs"), int) or isinstance(config.get("num_outputs"), bool) \
                or config["num_outputs"] < 1 or not isinstance(config.get("input_size"), int):
            raise ConfigError("a regression model config needs integer input_size and num_outputs >= 1")
        if not isinstance(config.get("params", {}), dict):
            raise ConfigError("model config's 'params' must be a table")
        return build_regressor(config.get("name"), config["input_size"], config["num_outputs"],
                               per_step=config["head"] == "per_step", **config.get("params", {}))
    missing = [k for k in ("name", "input_size", "num_classes") if k not in config]
    if missing:
        raise ConfigError(f"model config lacks the key {missing[0]!r}")
    if not isinstance(config.get("params", {}), dict):
        raise ConfigError("model config's 'params' must be a table")
    input_size = check_value("model input_size", config["input_size"], Param(int, low=1))
    num_classes = check_value("model num_classes", config["num_classes"], Param(int, low=1))
    if not isinstance(config["name"], str):
        raise ConfigError(f"model config's name must be a model name, got {config['name']!r}")
    return build_model(config["name"], input_size, num_classes, _legacy=True, **config.get("params", {}))
