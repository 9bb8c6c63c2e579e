"""Checkpoints without pickle: tensors in safetensors, everything else in JSON, written atomically.

A model folder holds ``model.safetensors`` (weights) and ``model.json`` (the config that
rebuilds it). A training folder adds ``state.safetensors`` + ``state.json``: the last
epoch's weights, optimizer and scheduler state, random generator states and history,
enough to resume a run exactly where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..data.files import atomic_write_bytes, atomic_write_text
from ..errors import DataError
from ..models import model_from_config

MODEL_WEIGHTS, MODEL_CONFIG = "model.safetensors", "model.json"
STATE_TENSORS, STATE_JSON = "state.safetensors", "state.json"


def _tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return st_save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()})


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return st_load(path.read_bytes())
    except FileNotFoundError:
        raise DataError(f"checkpoint file not found: {path}") from None
    except (SafetensorError, ValueError, OSError) as err:
        raise DataError(f"checkpoint file {path} is corrupt: {err}") from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"checkpoint file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"checkpoint file {path} is corrupt JSON: {err}") from None


def save_model(folder: Path, model, extra: dict | None = None, state_dict: dict | None = None) -> None:
    """Write ``model``'s weights (or the given ``state_dict``) and config to ``folder``."""
    folder = Path(folder)
    atomic_write_bytes(folder / MODEL_WEIGHTS, _tensor_bytes(state_dict or model.state_dict()))
    atomic_write_text(folder / MODEL_CONFIG, json.dumps({"model": model.config, **(extra or {})}, indent=2))


def load_model(folder: Path):
    """Rebuild the model saved in ``folder``; returns (model, metadata)."""
    folder = Path(folder)
    meta = _read_json(folder / MODEL_CONFIG)
    if "model" not in meta:
        raise DataError(f"{folder / MODEL_CONFIG} has no 'model' entry")
    model = model_from_config(meta["model"])
    weights = _read_tensors(folder / MODEL_WEIGHTS)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise DataError(f"weights in {folder / MODEL_WEIGHTS} do not fit the saved config: {err}") from None
    return model, meta


def _flatten_optimizer(opt_state: dict) -> tuple[dict, dict]:
    tensors, meta = {}, {"param_groups": opt_state["param_groups"], "state": {}}
    for idx, st in opt_state["state"].items():
        meta["state"][str(idx)] = {}
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = val
            else:
                meta["state"][str(idx)][key] = val
    return tensors, meta


def _unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state = {int(i): dict(v) for i, v in meta["state"].items()}
    for name, val in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    return {"state": state, "param_groups": meta["param_groups"]}


def save_training_state(folder: Path, model, optimizer, scheduler, generators: dict, info: dict,
                        best_state: dict | None = None) -> None:
    """Everything needed to resume: last weights, optimizer, scheduler, RNG states, info."""
    folder = Path(folder)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    tensors.update(opt_tensors)
    tensors.update({f"rng.{k}": g.get_state() for k, g in generators.items()})
    atomic_write_bytes(folder / STATE_TENSORS, _tensor_bytes(tensors))
    meta = {"optimizer": opt_meta, "scheduler": scheduler.state_dict(), "info": info, "model": model.config}
    atomic_write_text(folder / STATE_JSON, json.dumps(meta, indent=2))


def has_training_state(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / STATE_TENSORS).is_file() and (folder / STATE_JSON).is_file()


def load_training_state(folder: Path, model, optimizer, scheduler, generators: dict) -> tuple[dict, dict | None]:
    """Restore a state written by :func:`save_training_state`; returns (info, best_state)."""
    folder = Path(folder)
    meta = _read_json(folder / STATE_JSON)
    tensors = _read_tensors(folder / STATE_TENSORS)
    if meta.get("model") != model.config:
        raise DataError(f"training state in {folder} was written for a different model config; "
                        "use a fresh output folder or the same config")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    scheduler.load_state_dict(meta["scheduler"])
    for key, gen in generators.items():
        gen.set_state(tensors[f"rng.{key}"])
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    return meta["info"], best
