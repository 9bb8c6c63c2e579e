"""Checkpoints without pickle: tensors in safetensors, everything else in JSON, written atomically.

A model folder holds ``model.safetensors`` (weights) and ``model.json`` (the config that
rebuilds it). A training folder adds ``state.safetensors``: the last epoch's weights,
optimizer, random generator states and, in the file's own metadata header, the scheduler
state, history and what the run was trained on; enough to resume a run exactly where it
stopped. Tensors and metadata are one file, so one ``os.replace`` commits an epoch: a kill
can leave the previous epoch or the next, never a mix of the two.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..data.files import atomic_write_bytes, atomic_write_text
from ..errors import ConfigError, DataError
from ..models import model_from_config

MODEL_WEIGHTS, MODEL_CONFIG = "model.safetensors", "model.json"
STATE_TENSORS = "state.safetensors"
LEGACY_STATE_JSON = "state.json"  # older versions wrote the metadata beside the tensors
STATE_METADATA_KEY = "noisyrnn.training_state"


def _tensor_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    return st_save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata=metadata)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    return _read_tensors_and_metadata(path)[0]


def _read_tensors_and_metadata(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        data = path.read_bytes()
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_len]).get("__metadata__") or {}
    except FileNotFoundError:
        raise DataError(f"checkpoint file not found: {path}") from None
    except (SafetensorError, ValueError, OSError) as err:
        raise DataError(f"checkpoint file {path} is corrupt: {err}") from None
    return tensors, metadata


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"checkpoint file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"checkpoint file {path} is corrupt JSON: {err}") from None
    except IsADirectoryError:
        raise DataError(f"checkpoint file {path} is a folder") from None
    if not isinstance(data, dict):
        raise DataError(f"checkpoint file {path} must hold a JSON object, got {type(data).__name__}")
    return data


def save_model(folder: Path, model, extra: dict | None = None, state_dict: dict | None = None) -> None:
    """Write ``model``'s weights (or the given ``state_dict``) and config to ``folder``."""
    folder = Path(folder)
    atomic_write_bytes(folder / MODEL_WEIGHTS, _tensor_bytes(state_dict or model.state_dict()))
    atomic_write_text(folder / MODEL_CONFIG, json.dumps({"model": model.config, **(extra or {})}, indent=2))


def load_model(folder: Path):
    """Rebuild the model saved in ``folder``; returns (model, metadata)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"checkpoint path {folder} is a file; name the folder holding {MODEL_CONFIG}")
    meta = _read_json(folder / MODEL_CONFIG)
    if "model" not in meta:
        raise DataError(f"{folder / MODEL_CONFIG} has no 'model' entry")
    try:
        model = model_from_config(meta["model"])
    except ConfigError as err:
        raise DataError(f"{folder / MODEL_CONFIG}: {err}") from None
    weights = _read_tensors(folder / MODEL_WEIGHTS)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise DataError(f"weights in {folder / MODEL_WEIGHTS} do not fit the model {MODEL_CONFIG} describes "
                        f"({detail[:300]})") from None
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


def scheduler_state_to_json(state: dict) -> dict:
    """A learning-rate scheduler's ``state_dict`` as JSON can hold it. ``MultiStepLR`` keeps its
    milestones in a ``Counter`` keyed by epoch: JSON would turn the keys into strings that never
    equal the integer epoch again (the decay would silently be lost on resume), so they are
    written as ``[epoch, count]`` pairs."""
    out = dict(state)
    if isinstance(out.get("milestones"), dict):
        out["milestones"] = sorted([int(k), int(v)] for k, v in out["milestones"].items())
    return out


def scheduler_state_from_json(state: dict) -> dict:
    """Inverse of :func:`scheduler_state_to_json`; also repairs states written by older
    versions, whose milestone keys are strings."""
    out = dict(state)
    milestones = out.get("milestones")
    if isinstance(milestones, dict):
        out["milestones"] = Counter({int(k): int(v) for k, v in milestones.items()})
    elif isinstance(milestones, list):
        out["milestones"] = Counter({int(k): int(v) for k, v in milestones})
    return out


def save_training_state(folder: Path, model, optimizer, scheduler, generators: dict, info: dict,
                        best_state: dict | None = None) -> None:
    """Everything needed to resume (last weights, optimizer, scheduler, RNG states, info), in
    one file written atomically: one epoch's commit."""
    folder = Path(folder)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    tensors.update(opt_tensors)
    tensors.update({f"rng.{k}": g.get_state() for k, g in generators.items()})
    meta = {"optimizer": opt_meta, "scheduler": scheduler_state_to_json(scheduler.state_dict()), "info": info,
            "model": model.config}
    atomic_write_bytes(folder / STATE_TENSORS, _tensor_bytes(tensors, {STATE_METADATA_KEY: json.dumps(meta)}))
    (folder / LEGACY_STATE_JSON).unlink(missing_ok=True)  # superseded: never read beside a newer state


def has_training_state(folder: Path) -> bool:
    return (Path(folder) / STATE_TENSORS).is_file()


def read_training_state(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of the state in ``folder`` (its one file, or an older version's pair)."""
    folder = Path(folder)
    tensors, header = _read_tensors_and_metadata(folder / STATE_TENSORS)
    if STATE_METADATA_KEY in header:
        try:
            meta = json.loads(header[STATE_METADATA_KEY])
        except json.JSONDecodeError as err:
            raise DataError(f"checkpoint file {folder / STATE_TENSORS} has corrupt metadata: {err}") from None
    elif (folder / LEGACY_STATE_JSON).is_file():
        meta = _read_json(folder / LEGACY_STATE_JSON)
    else:
        raise DataError(f"checkpoint file {folder / STATE_TENSORS} holds no training metadata; "
                        "it was not written by noisyrnn's trainer")
    return meta, tensors


def load_training_state(folder: Path, model, optimizer, scheduler, generators: dict,
                        state: tuple[dict, dict] | None = None) -> tuple[dict, dict | None]:
    """Restore a state written by :func:`save_training_state`; returns (info, best_state).
    ``state``: what :func:`read_training_state` already read from ``folder`` (not read again)."""
    folder = Path(folder)
    meta, tensors = state if state is not None else read_training_state(folder)
    if meta.get("model") != model.config:
        raise DataError(f"training state in {folder} was written for a different model config; "
                        "use a fresh output folder or the same config")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    scheduler.load_state_dict(scheduler_state_from_json(meta["scheduler"]))
    for key, gen in generators.items():
        gen.set_state(tensors[f"rng.{key}"])
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    return meta["info"], best


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries an interrupted atomic write left in ``folder`` (``.NAME.*.tmp``);
    call it only while owning the folder."""
    removed = []
    for p in Path(folder).glob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
