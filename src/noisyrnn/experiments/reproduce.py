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
from ..training import TrainConfig, train_model
from ..training.checkpoint import load_model
from .configs import task_config
from .paper import COLUMNS
from .report import aggregate, write_outputs

RESULT = "result.json"


def run_dir(out: Path, model: str, seed: int) -> Path:
    return Path(out) / "runs" / model / f"seed{seed}"


def run_one(task, model: str, config: dict, seed: int, folder: Path, columns, progress: bool) -> dict:
    """Train one seed (resuming if a checkpoint exists) and evaluate it; returns its result."""
    done = folder / RESULT
    if done.is_file():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    train_cfg = TrainConfig.from_dict({**config["train"], "seed": seed})
    result = train_model(model, config["params"], task, train_cfg, out_dir=folder, progress=progress)
    accuracies = robustness(result.model, task.test, columns, seed=seed)
    record = {
        "model": model, "seed": seed, "task": task.name, "accuracy": accuracies,
        "best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
        "train_seconds": result.seconds, "seconds": time.perf_counter() - t0,
        "config": config,
    }
    atomic_write_text(done, json.dumps(record, indent=2))
    return record


def reproduce(task_name: str, models, seeds: int, out: Path, data_dir=None, config_dir=None,
              progress: bool = True, log=print, download: bool = False) -> dict:
    """Run the table's experiment and write OUT/results.json, OUT/report.md, OUT/figure.png."""
    out = Path(out)
    t0 = time.perf_counter()
    task = load_task(task_name, data_dir=data_dir, download=download)
    columns = COLUMNS[task_name]
    configs = {m: task_config(task_name, m, config_dir) for m in models}  # fail early on a bad name
    records = {m: [] for m in models}
    for model in models:
        for seed in range(seeds):
            rec = run_one(task, model, configs[model], seed, run_dir(out, model, seed), columns, progress)
            records[model].append(rec)
            if log:
                acc = rec["accuracy"]
                log(f"{model:>14s} seed {seed}: " + "  ".join(f"{c}={acc[c]:.4f}" for c in columns))
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
