"""What a training folder may be resumed from: the run's identity and the checks before training.

A run is resumed only when its folder's state was written by the same run: the same model
configs, training settings, seeds and training data (a SHA-256 fingerprint of the train and
validation splits). Anything else is refused with the difference named, unless the caller
asks to overwrite (``resume=False``, ``noisyrnn train --overwrite``), which clears the folder's
run files first.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..errors import ConfigError
from .checkpoint import LEGACY_STATE_JSON, MODEL_CONFIG, MODEL_WEIGHTS, STATE_TENSORS, has_training_state
from .checkpoint import read_training_state, remove_stale_temporaries

RUN_FILES = (STATE_TENSORS, LEGACY_STATE_JSON, MODEL_WEIGHTS, MODEL_CONFIG, "metrics.jsonl")


def _update(h, t: torch.Tensor | None) -> None:
    if t is None:
        h.update(b"none")
        return
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def data_fingerprint(task) -> str:
    """SHA-256 over the training and validation splits (inputs, labels, lengths) and what the
    labels and channels mean (class names, normalisation): what the run saw."""
    h = hashlib.sha256()
    for split in (task.train, task.val):
        for t in (split.x, split.y, split.lengths):
            _update(h, t)
    spec = task.data_spec()
    meaning = {"classes": spec["classes"]} if "classes" in spec else {"target_normalization":
                                                                      spec["target_normalization"]}
    h.update(json.dumps({**meaning, "normalization": spec["normalization"]}, sort_keys=True).encode())
    return h.hexdigest()


# Options that do nothing at their default and are left out of the identity then, so that a run
# written before they existed resumes.
INERT_AT_DEFAULT = ("input_noise", "input_mult_noise")


def run_identity(models, task, config, seeds) -> dict:
    """JSON-ready identity of a training run; a folder's state resumes only under an equal one."""
    from ..parameters import TRAIN_PARAMS

    train = {k: v for k, v in config.to_dict().items()
             if not (k in INERT_AT_DEFAULT and v == TRAIN_PARAMS[k].default)}
    identity = {"models": [m.config for m in models], "train_config": train,
                "seeds": [int(s) for s in seeds], "data_fingerprint": data_fingerprint(task)}
    return json.loads(json.dumps(identity))  # as the state file will hold it (tuples become lists)


def _difference(saved: dict, current: dict) -> str:
    if saved.get("data_fingerprint") != current["data_fingerprint"]:
        return "it was trained on other data (training/validation fingerprint differs)"
    if saved.get("models") != current["models"]:
        return "its model configuration differs"
    if saved.get("seeds") != current["seeds"]:
        return f"its seeds differ ({saved.get('seeds')} there, {current['seeds']} now)"
    a, b = saved.get("train_config", {}), current["train_config"]
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return "its training settings differ: " + ", ".join(f"{k} = {a.get(k)!r} there, {b.get(k)!r} now" for k in keys)


def prepare_run_folder(out_dir: Path, member_dirs, identity: dict, resume: bool) -> tuple[dict, dict] | None:
    """Make ``out_dir`` (owned by the caller) ready: clear stale temporaries, then either check
    that its state belongs to this run (``resume``) or clear the previous run's files. Returns
    the state it read (metadata, tensors) for the loop to resume from, or None."""
    out_dir = Path(out_dir)
    folders = [out_dir] + [Path(d) for d in member_dirs if Path(d) != out_dir]
    for folder in folders:
        if folder.is_dir():
            remove_stale_temporaries(folder)
    if not resume:
        for folder in folders:
            for name in RUN_FILES:
                (folder / name).unlink(missing_ok=True)
        return None
    if has_training_state(out_dir):
        state = read_training_state(out_dir)
        saved = state[0].get("info", {}).get("identity")
        # saved is None: written before identities were recorded; the model config is all we can check
        if saved is not None and saved != identity:
            raise ConfigError(f"{out_dir} holds a training run that is not this one: {_difference(saved, identity)}; "
                              "use another output folder, or --overwrite to replace it")
        return state
    trained = [f for f in folders if (f / MODEL_CONFIG).is_file() or (f / MODEL_WEIGHTS).is_file()]
    if trained:
        raise ConfigError(f"{trained[0]} holds a saved model but no training state to resume from; use another "
                          "output folder, or --overwrite to replace it")
