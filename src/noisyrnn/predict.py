"""A trained run read back for new data: the model, the user's class labels and the input
normalisation stored in its checkpoint, and class probabilities for new sequences."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .data.files import atomic_write_text
from .data.normalize import ChannelNormalizer
from .data.task import Split
from .memory import evaluation_batch
from .training.checkpoint import load_model


@dataclass
class TrainedRun:
    model: torch.nn.Module
    classes: list
    normalization: ChannelNormalizer | None
    value_range: tuple[float, float] | None
    meta: dict
    folder: Path

    @classmethod
    def load(cls, folder) -> "TrainedRun":
        """The run in ``folder``; a checkpoint whose data description is missing or contradicts
        its model (classes, channels, normalisation, value range) is refused before any use."""
        folder = Path(folder)
        if not folder.exists():
            raise DataError(f"run folder {folder} does not exist")
        if not folder.is_dir():
            raise DataError(f"run path {folder} is a file; name the run's folder (holding model.json)")
        model, meta = load_model(folder)
        spec = meta.get("data")
        if not isinstance(spec, dict):
            raise DataError(f"{folder / 'model.json'} has no 'data' entry (the classes, input normalisation and "
                            "value range the model was trained with), so new data cannot be read as it was; "
                            "it was not written by noisyrnn train, or was edited")
        classes, normalization, value_range = check_data_spec(spec, model, folder / "model.json")
        run = cls(model, classes, normalization, value_range, meta, folder)
        if spec.get("regression"):
            try:
                run.target_normalization = ChannelNormalizer.from_dict(spec.get("target_normalization"))
            except (TypeError, ValueError, KeyError, AttributeError) as err:
                raise DataError(f"{folder / 'model.json'}: 'target_normalization' is malformed ({err}); the "
                                "checkpoint is corrupt or was edited") from None
        return run

    target_normalization: ChannelNormalizer | None = None

    @property
    def regression(self) -> bool:
        return bool(self.meta.get("data", {}).get("regression"))


def check_data_spec(spec: dict, model, where) -> tuple[list, ChannelNormalizer | None, tuple | None]:
    """(classes, normalisation, value range) of a checkpoint's data description, each checked
    against the model it describes; DataError naming ``where`` otherwise."""
    def bad(text):
        return DataError(f"{where}: {text}; the checkpoint is corrupt or was edited")

    if spec.get("regression"):  # real-valued targets: no classes; as many targets as the head's outputs
        if spec.get("targets") != getattr(model, "num_outputs", None):
            raise bad(f"'targets' is {spec.get('targets')!r} but the model's head has "
                      f"{getattr(model, 'num_outputs', '?')} outputs")
        classes = None
    else:
        classes = spec.get("classes")
    if classes is None and not spec.get("regression"):
        classes = list(range(model.num_classes))
    if classes is not None and (not isinstance(classes, list) or len(classes) != model.num_classes):
        raise bad(f"'classes' lists {len(classes) if isinstance(classes, list) else repr(classes)} label(s) but "
                  f"the model's decoder has {model.num_classes} outputs")
    if classes is not None and len({json.dumps(c) for c in classes}) != len(classes):
        raise bad("'classes' repeats a label")
    if "input_size" in spec and spec["input_size"] != model.input_size:
        raise bad(f"'input_size' is {spec['input_size']!r} but the model takes {model.input_size} channel(s)")
    normalization = None
    if spec.get("normalization") is not None:
        try:
            normalization = ChannelNormalizer.from_dict(spec["normalization"])
            mean, std = np.asarray(normalization.mean, dtype=float), np.asarray(normalization.std, dtype=float)
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            raise bad(f"'normalization' is malformed ({err})") from None
        if mean.shape != (model.input_size,) or std.shape != (model.input_size,):
            raise bad(f"'normalization' has {mean.size} mean(s) and {std.size} std(s) for a model of "
                      f"{model.input_size} channel(s)")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise bad("'normalization' holds a non-finite mean or a std <= 0")
    vr = spec.get("value_range")
    value_range = None
    if vr is not None:
        ok = (isinstance(vr, list) and len(vr) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                             and math.isfinite(v) for v in vr) and vr[0] <= vr[1])
        if not ok:
            raise bad(f"'value_range' must be [min, max] of finite numbers, got {vr!r}")
        value_range = (float(vr[0]), float(vr[1]))
    return classes, normalization, value_range


@torch.no_grad()
def predict_proba(model, split: Split, batch_size: int = 1000) -> torch.Tensor:
    """Softmax class probabilities (n, C), noise injection off."""
    was = model.training
    model.eval()
    out = []
    try:
        device = next(model.parameters()).device
        batch_size = evaluation_batch(model, split.x.shape[1], batch_size)
        for start in range(0, len(split), batch_size):
            x, _, lengths = split.batch(slice(start, start + batch_size), device)
            out.append(torch.softmax(model(x, noise=False, lengths=lengths), dim=-1).cpu())
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.zeros(0, model.num_classes)


@torch.no_grad()
def predict_targets(model, split: Split, target_normalization=None, batch_size: int = 1000) -> torch.Tensor:
    """A regressor's predictions (n, k), float64, in the targets' own units when
    ``target_normalization`` is given (the z-scoring it was trained with); noise off."""
    was = model.training
    model.eval()
    out = []
    try:
        batch_size = evaluation_batch(model, split.x.shape[1], batch_size)
        for start in range(0, len(split), batch_size):
            x, _, lengths = split.batch(slice(start, start + batch_size))
            out.append(model(x, noise=False, lengths=lengths))
    finally:
        model.train(was)
    values = (torch.cat(out) if out else torch.zeros(0, model.num_outputs)).double()
    if target_normalization is None:
        return values
    return values * torch.tensor(target_normalization.std, dtype=torch.float64) + \
        torch.tensor(target_normalization.mean, dtype=torch.float64)


def write_predictions(path, probabilities: torch.Tensor, classes, true_labels=None) -> None:
    """CSV, one row per sequence: index, predicted label, [true label,] one probability per class."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", "predicted"] + (["label"] if true_labels is not None else [])
               + [f"prob_{c}" for c in classes])
    pred = probabilities.argmax(-1).tolist()
    for i, row in enumerate(probabilities.tolist()):
        w.writerow([i, classes[pred[i]]] + ([true_labels[i]] if true_labels is not None else [])
                   + [f"{p:.6g}" for p in row])
    atomic_write_text(Path(path), buf.getvalue())
