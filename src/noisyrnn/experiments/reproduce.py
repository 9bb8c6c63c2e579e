"""Reproduce a paper table: train every (model, seed), evaluate robustness, aggregate, report.

Each run lives in ``OUT/runs/MODEL/seedK/`` with its checkpoint, metrics log and
``result.json``. A run whose result exists is not redone; an interrupted run resumes
from its last epoch's checkpoint; so re-running the same command after a kill finishes
the job and gives the same numbers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..data import load_task
from ..data.files import atomic_write_text
from ..evaluation import robustness
from ..ensemble import can_batch
from ..models import build_model
from ..training import TrainConfig, train_model
from ..training.checkpoint import load_model
from ..training.ensemble_trainer import fit_ensemble
from .configs import task_config
from .paper import COLUMNS
from .report import aggregate, write_outputs

RESULT = "result.json"


def run_dir(out: Path, model: str, seed: int) -> Path:
    return Path(out) / "runs" / model / f"seed{seed}"


def _record(task, model: str, config: dict, seed: int, folder: Path, columns, result, seconds: float,
            batched: int = 1) -> dict:
    """Evaluate a trained run on the test split and write its result.json atomically."""
    t0 = time.perf_counter()
    accuracies = robustness(result.model, task.test, columns, seed=seed)
    record = {
        "model": model, "seed": seed, "task": task.name, "accuracy": accuracies,
        "best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
        "train_seconds": result.seconds, "seconds": seconds + time.perf_counter() - t0,
        "trained_with_seeds_batched": batched, "config": config,
    }
    atomic_write_text(Path(folder) / RESULT, json.dumps(record, indent=2))
    return record


def run_one(task, model: str, config: dict, seed: int, folder: Path, columns, progress: bool) -> dict:
    """Train one seed (resuming if a checkpoint exists) and evaluate it; returns its result."""
    done = folder / RESULT
    if done.is_file():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    train_cfg = TrainConfig.from_dict({**config["train"], "seed": seed})
    result = train_model(model, config["params"], task, train_cfg, out_dir=folder, progress=progress)
    return _record(task, model, config, seed, folder, columns, result, time.perf_counter() - t0)


def run_batched(task, model: str, config: dict, seeds, out: Path, columns, progress: bool) -> list[dict]:
    """Train the seeds without a result as one seed-batched ensemble, then evaluate each."""
    pending = [s for s in seeds if not (run_dir(out, model, s) / RESULT).is_file()]
    if pending:
        t0 = time.perf_counter()
        train_cfg = TrainConfig.from_dict({**config["train"], "seed": pending[0]})
        state_dir = Path(out) / "runs" / model / ("ensemble-seeds-" + "-".join(map(str, pending)))
        results = fit_ensemble(model, config["params"], task, train_cfg, pending, out_dir=state_dir,
                               member_dirs=[run_dir(out, model, s) for s in pending], progress=progress)
        share = (time.perf_counter() - t0) / len(pending)
        for s, res in zip(pending, results):
            _record(task, model, config, s, run_dir(out, model, s), columns, res, share, batched=len(pending))
    return [json.loads((run_dir(out, model, s) / RESULT).read_text()) for s in seeds]


def batchable(task, model: str, config: dict) -> bool:
    probe = build_model(model, task.input_size, task.num_classes, **config["params"])
    return can_batch([probe]) and not TrainConfig.from_dict(config["train"]).grad_clip


def reproduce(task_name: str, models, seeds: int, out: Path, data_dir=None, config_dir=None,
              progress: bool = True, log=print, download: bool = False, batch_seeds: bool = True) -> dict:
    """Run the table's experiment and write OUT/results.json, OUT/report.md, OUT/figure.png.

    With ``batch_seeds`` the seeds of an NRNN-family model train together as one
    seed-batched ensemble (same results as separate runs, up to rounding)."""
    out = Path(out)
    t0 = time.perf_counter()
    task = load_task(task_name, data_dir=data_dir, download=download)
    columns = COLUMNS[task_name]
    configs = {m: task_config(task_name, m, config_dir) for m in models}  # fail early on a bad name
    records = {m: [] for m in models}
    for model in models:
        if batch_seeds and seeds > 1 and batchable(task, model, configs[model]):
            recs = run_batched(task, model, configs[model], list(range(seeds)), out, columns, progress)
        else:
            recs = [run_one(task, model, configs[model], s, run_dir(out, model, s), columns, progress)
                    for s in range(seeds)]
        records[model] = recs
        for rec in recs if log else []:
            acc = rec["accuracy"]
            log(f"{model:>14s} seed {rec['seed']}: " + "  ".join(f"{c}={acc[c]:.4f}" for c in columns))
    results = aggregate(task_name, records, columns)
    results["meta"] = {
        "seeds": seeds, "wall_seconds": time.perf_counter() - t0, "task": task.description,
        "configs": configs,
        "per_seed": {m: [r["accuracy"] for r in rs] for m, rs in records.items()},
        "run_seconds": {m: [r["seconds"] for r in rs] for m, rs in records.items()},
    }
    write_outputs(out, results)
    return results


def evaluate_checkpoint(folder: Path, task_name: str, columns=None, seed: int = 0, data_dir=None) -> dict:
    """Robustness of a saved model on a task's test split."""
    model, _ = load_model(folder)
    task = load_task(task_name, data_dir=data_dir)
    return robustness(model, task.test, columns or COLUMNS[task_name], seed=seed)
