"""The noise setting of a model's configuration: one of none, research(mult, add), sde(eps, sigma1, sigma2).

Config files and the command line spell it as the shipped configs do::

    noise = "research"   mult_noise = 0.02   add_noise = 0.05     # the authors' code (noise.ResearchCodeNoise)
    noise = "sde"        noise_eps = 1.0     sigma1 = 0.5   sigma2 = 0.0   # eq (4)-(5) (noise.EulerMaruyama)
    noise = "none"                                                 # eq (6): no injection

Every drift model (the Lipschitz family, ``antisymmetric``, ``antisymmetric_gated``, ``cornn``,
``exprnn``) takes any of the three; ``lstm``/``gru`` take only ``none``. A key of another setting
is an error (``sigma1`` with ``noise = "research"``), and so is a setting that injects nothing
(``noise = "sde"`` with sigma1 = sigma2 = 0), which would otherwise train a noise-free model
under a noisy name.
"""

from __future__ import annotations

from typing import Any

from ..dynamics import PaperDiffusion
from ..errors import ConfigError
from ..parameters import MODEL_PARAMS, check_value
from ..noise import EulerMaruyama, ResearchCodeNoise

NOISE_KEYS: dict[str, tuple[str, ...]] = {
    "none": (),
    "research": ("mult_noise", "add_noise"),
    "sde": ("noise_eps", "sigma1", "sigma2"),
}
ALL_NOISE_KEYS = tuple(k for keys in NOISE_KEYS.values() for k in keys)
NOISE_DEFAULTS: dict[str, float] = {k: MODEL_PARAMS[k].default for k in ALL_NOISE_KEYS}


def noise_setting(model: str, defaults: dict[str, Any], params: dict[str, Any], legacy: bool = False,
                  allowed=("none", "research", "sde")) -> dict[str, Any]:
    """``{"noise": kind, <that kind's keys>}`` from the model's ``defaults`` and the given ``params``.

    ``legacy``: a checkpoint written before settings were typed stored every scheme's keys;
    the keys of the schemes it did not use never affected it and are dropped."""
    kind = params.get("noise", defaults.get("noise", "none"))
    if not isinstance(kind, str):
        raise ConfigError(f"params.noise must be one of {', '.join(repr(a) for a in allowed)}, got {kind!r}")
    if kind not in allowed:
        if kind == "none" and "none" not in allowed:
            raise ConfigError(f"model {model!r} is defined by its noise (params.noise = 'research' or 'sde'); "
                              "for no noise use model 'lipschitz'")
        if allowed == ("none",):
            raise ConfigError(f"model {model!r} has no hidden-state noise injection: params.noise must be 'none', "
                              f"got {kind!r}")
        raise ConfigError(f"unknown noise setting {kind!r} for model {model!r}; known: {', '.join(allowed)}")
    own = NOISE_KEYS[kind]
    for key in ALL_NOISE_KEYS:
        if key in params and key not in own and not legacy:
            users = next(k for k, keys in NOISE_KEYS.items() if key in keys)
            hint = ("set params.noise = 'research' or 'sde' to inject noise" if kind == "none"
                    else "remove it, or change params.noise")
            raise ConfigError(f"parameter {key!r} applies to noise = {users!r}, but model {model!r} has "
                              f"noise = {kind!r}: {hint}")
    start = defaults if defaults.get("noise") == kind else NOISE_DEFAULTS
    out: dict[str, Any] = {"noise": kind}
    for key in own:
        out[key] = check_value(f"params.{key}", params.get(key, start.get(key, NOISE_DEFAULTS[key])), MODEL_PARAMS[key])
    off = "set noise = 'none'" if "none" in allowed else "use model 'lipschitz'"
    if kind == "research" and out["mult_noise"] == 0 and out["add_noise"] == 0:
        raise ConfigError(f"noise = 'research' with mult_noise = add_noise = 0 injects no noise (model {model!r}): "
                          f"give a level > 0, or {off} for a noise-free model")
    if kind == "sde" and (out["noise_eps"] == 0 or out["sigma1"] == out["sigma2"] == 0):
        raise ConfigError(f"noise = 'sde' with noise_eps = {out['noise_eps']:g}, sigma1 = {out['sigma1']:g}, "
                          f"sigma2 = {out['sigma2']:g} injects no noise (model {model!r}): give sigma1 or "
                          f"sigma2 > 0 (and noise_eps > 0), or {off} for a noise-free model")
    return out


def rebase_params(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """``base`` (a config's or the model's parameters) updated by the user's ``updates``. When the
    updates switch ``noise`` to another setting, the base's keys of the old setting go (they were
    the base's, not the user's), so ``params.noise=sde`` on an NRNN recipe is not refused for the
    recipe's ``mult_noise``; a key of another setting that the user gives is still an error."""
    if "noise" in updates and updates["noise"] != base.get("noise"):
        base = {k: v for k, v in base.items() if k not in ALL_NOISE_KEYS}
    return {**base, **updates}


def noise_scheme(setting: dict[str, Any]):
    """The :mod:`noisyrnn.noise` scheme of a resolved setting (None for ``none``)."""
    kind = setting["noise"]
    if kind == "research":
        return ResearchCodeNoise(setting["mult_noise"], setting["add_noise"])
    if kind == "sde":
        return EulerMaruyama(PaperDiffusion(setting["noise_eps"], setting["sigma1"], setting["sigma2"]))
    return None
