"""Experiment configs: one TOML file per (task, model) under noisyrnn/configs/TASK/MODEL.toml.

A config holds ``model`` (a registered model name), ``[params]`` (model parameters) and
``[train]`` (:class:`~noisyrnn.training.TrainConfig` fields except the seed).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from ..errors import ConfigError
from ..models.registry import resolve_params
from ..training import TrainConfig

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"


def config_path(task: str, model: str, config_dir=None) -> Path:
    return Path(config_dir or CONFIG_ROOT / task) / f"{model}.toml"


def load_config(path: Path) -> dict:
    """Read and validate a config file; returns {'model', 'params', 'train'}."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder") from None
    if not isinstance(raw.get("params", {}), dict) or not isinstance(raw.get("train", {}), dict):
        raise ConfigError(f"config file {path}: [params] and [train] must be tables")
    unknown = set(raw) - {"model", "params", "train", "description"}
    if unknown:
        raise ConfigError(f"config file {path}: unknown section(s) {', '.join(sorted(unknown))}")
    if "model" not in raw:
        raise ConfigError(f"config file {path} lacks 'model = NAME'")
    params = resolve_params(raw["model"], raw.get("params", {}))
    train = TrainConfig.from_dict(raw.get("train", {})).to_dict()
    return {"model": raw["model"], "params": params, "train": train, "description": raw.get("description", "")}


def default_config(model: str) -> dict:
    """The model's own defaults: its registry parameters, and the declared training defaults
    with the model's :data:`~noisyrnn.models.registry.TRAIN_OVERRIDES` (``lr_milestones``
    unset: the decay follows the epochs)."""
    from ..models.registry import TRAIN_OVERRIDES

    params = resolve_params(model, {})
    train = TrainConfig.from_dict(dict(TRAIN_OVERRIDES.get(model, {}))).to_dict()
    return {"model": model, "params": params, "train": train, "description": f"{model}: library defaults"}


def task_config(task: str, model: str, config_dir=None) -> dict:
    path = config_path(task, model, config_dir)
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.toml"))
        raise ConfigError(f"no config for model {model!r} on task {task!r} ({path}); "
                          f"available: {', '.join(available) or 'none'}")
    return load_config(path)
