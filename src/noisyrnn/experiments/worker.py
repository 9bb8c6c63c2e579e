"""Execute one sweep job (one configuration, one or more seeds) in the current process.

A job is a plain dict, so any executor (in-process, a process pool, Ray) can ship it.
Each seed ends with ``result.json`` (test robustness of the selected model) or
``error.json`` (the exception that stopped it) in its run folder; a failure never
escapes to the caller.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from ..data import load_task
from ..data.files import atomic_write_text
from ..ensemble import can_batch
from ..evaluation import robustness
from ..locking import FolderLock
from ..models import build_model
from ..provenance import code_version
from ..training import TrainConfig, train_model
from ..training import fit_ensemble
from .sweep import read_outcome, run_folder

CLAIM = ".claim"  # a run's claim file: held (flock) by the process that trains it
_TASKS: dict = {}


def _task(name: str, data_dir, download: bool, options: dict | None = None):
    key = (name, str(data_dir), download, json.dumps(options or {}, sort_keys=True))
    if key not in _TASKS:
        _TASKS[key] = load_task(name, data_dir=data_dir, download=download, **(options or {}))
    return _TASKS[key]


def _record(task, spec: dict, seed: int, folder: Path, columns, result, seconds: float, batched: int) -> None:
    t0 = time.perf_counter()
    record = {
        "status": "done", "run": spec["name"], "model": spec["model"], "seed": seed, "task": task.name,
        "accuracy": robustness(result.model, task.test if task.test is not None else task.val, columns,
                               seed=seed, value_range=task.data_range),
        "evaluated_on": "test" if task.test is not None else "validation (the data have no test part)",
        "validation": robustness(result.model, task.val, validation_columns(spec, columns), seed=seed,
                                 value_range=task.data_range),
        "best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
        "train_seconds": result.seconds, "seconds": seconds + time.perf_counter() - t0,
        "trained_with_seeds_batched": batched,
        "code": spec.get("code") or code_version(),
        "config": {**spec["config"], "train": {**spec["config"]["train"], "seed": seed}},  # this run's seed
    }
    (folder / "error.json").unlink(missing_ok=True)
    atomic_write_text(folder / "result.json", json.dumps(record, indent=2))


def validation_columns(spec: dict, columns) -> list[str]:
    """Validation accuracy is recorded clean and under the run's selection perturbation, so
    a search can choose on validation data only."""
    under = spec["config"]["train"].get("select_under")
    return ["clean"] + ([under] if under else [])


def _record_error(spec: dict, seed: int, folder: Path, err: BaseException) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"status": "failed", "run": spec["name"], "model": spec["model"], "seed": seed,
              "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    atomic_write_text(folder / "error.json", json.dumps(record, indent=2))


def batchable(task, spec: dict) -> bool:
    probe = build_model(spec["model"], task.input_size, task.num_classes, **spec["config"]["params"])
    train = spec["config"]["train"]
    return can_batch([probe]) and train.get("regularizer", "none") == "none"


def execute_job(job: dict) -> list[dict]:
    """Run ``job`` = {task, data_dir, download, out, columns, spec, seeds, threads, progress}."""
    if job.get("threads"):
        import torch

        torch.set_num_threads(int(job["threads"]))
    out, spec = Path(job["out"]), job["spec"]
    claims = []
    try:
        for s in job["seeds"]:  # a run is claimed before it trains: no executor trains one twice
            claim = FolderLock(run_folder(out, spec["name"], s), CLAIM, what="run")
            if claim.try_acquire():
                claims.append((s, claim))
        # claimed and still unfinished (another process may have finished it meanwhile)
        seeds = [s for s, _ in claims if not (run_folder(out, spec["name"], s) / "result.json").is_file()]
        _train_claimed(job, seeds)
    finally:
        for _, claim in claims:
            claim.release()
    return [read_outcome(out, spec["name"], s) for s in job["seeds"]]


def _train_claimed(job: dict, seeds: list[int]) -> None:
    out, spec, columns = Path(job["out"]), job["spec"], job["columns"]
    if not seeds:
        return
    progress = bool(job.get("progress", False))
    try:
        task = _task(job["task"], job.get("data_dir"), bool(job.get("download")), job.get("task_options"))
        batched = len(seeds) > 1 and spec.get("batch_seeds", True) and batchable(task, spec)
    except Exception as err:  # noqa: BLE001 - recorded, never raised
        for s in seeds:
            _record_error(spec, s, run_folder(out, spec["name"], s), err)
        return
    cfg = spec["config"]
    if batched:
        t0 = time.perf_counter()
        folders = [run_folder(out, spec["name"], s) for s in seeds]
        state_dir = out / "runs" / spec["name"] / ("ensemble-seeds-" + "-".join(map(str, seeds)))
        try:
            results = fit_ensemble(spec["model"], cfg["params"], task,
                                   TrainConfig.from_dict({**cfg["train"], "seed": seeds[0]}), seeds,
                                   out_dir=state_dir, member_dirs=folders, progress=progress)
            share = (time.perf_counter() - t0) / len(seeds)
            for s, folder, res in zip(seeds, folders, results):
                _record(task, spec, s, folder, columns, res, share, len(seeds))
        except Exception as err:  # noqa: BLE001
            for s, folder in zip(seeds, folders):
                _record_error(spec, s, folder, err)
    else:
        for s in seeds:
            folder = run_folder(out, spec["name"], s)
            t0 = time.perf_counter()
            try:
                res = train_model(spec["model"], cfg["params"], task,
                                  TrainConfig.from_dict({**cfg["train"], "seed": s}), out_dir=folder,
                                  progress=progress)
                _record(task, spec, s, folder, columns, res, time.perf_counter() - t0, 1)
            except Exception as err:  # noqa: BLE001
                _record_error(spec, s, folder, err)
