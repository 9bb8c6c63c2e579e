"""``noisyrnn reproduce TASK``: the paper's table as a shipped sweep, then its report.

A thin wrapper over :mod:`noisyrnn.experiments.sweep`: it loads
``configs/sweeps/TASK_table*.toml``, restricted to the requested models and seeds, runs it
into the results store ``OUT`` and writes ``OUT/results.json``, ``OUT/report.md`` and
``OUT/figure.png``. Re-running after an interruption finishes the job with the same numbers.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import ConfigError
from ..training.checkpoint import load_model
from .executors import make_executor
from .paper import COLUMNS
from .report import report_store
from .runner import run_sweep
from .sweep import SWEEP_ROOT, load_sweep

TABLE_SWEEPS = {
    "ecg": {"full": "ecg_table3"},
    "mnist": {"cpu": "mnist_pixel_cpu", "rows": "mnist_cpu", "full": "mnist_full"},
    "pmnist": {"cpu": "pmnist_pixel_cpu", "rows": "pmnist_cpu", "full": "pmnist_full"},
}
DEFAULT_PROTOCOL = {"ecg": "full", "mnist": "cpu", "pmnist": "cpu"}


def reproduce(task_name: str, models, seeds: int | None, out: Path, data_dir=None, config_dir=None,
              progress: bool = True, log=print, download: bool = False, batch_seeds: bool = True,
              executor: str = "local", workers: int = 1, address: str | None = None,
              protocol: str | None = None, threads: int | None = None, keep_freed_memory: bool = False,
              wait: bool = False) -> dict:
    """Run the paper table's sweep for ``models`` x ``seeds`` (None: the sweep's) and write the report."""
    if task_name not in TABLE_SWEEPS:
        raise ConfigError(f"no paper table to reproduce for task {task_name!r}; known: {', '.join(TABLE_SWEEPS)}")
    protocol = protocol or DEFAULT_PROTOCOL[task_name]
    if protocol not in TABLE_SWEEPS[task_name]:
        raise ConfigError(f"task {task_name!r} has no {protocol!r} protocol; known: "
                          f"{', '.join(TABLE_SWEEPS[task_name])}")
    t0 = time.perf_counter()
    sweep = load_sweep(SWEEP_ROOT / f"{TABLE_SWEEPS[task_name][protocol]}.toml", config_dir=config_dir,
                       seeds=seeds, models=models)
    for run in sweep.runs:
        run.batch_seeds = run.batch_seeds and batch_seeds
    run_sweep(sweep, out, make_executor(executor, workers, address, threads, keep_freed_memory), data_dir=data_dir, download=download,
              progress=progress, log=log, wait=wait)
    return report_store(out, {"wall_seconds": time.perf_counter() - t0, "protocol": protocol,
                              "sweep": sweep.description})


def evaluate_checkpoint(folder: Path, task_name: str, columns=None, seed: int = 0, data_dir=None) -> dict:
    """Robustness of a saved model on a task's test split."""
    from ..data import load_task
    from ..evaluation import robustness

    model, _ = load_model(folder)
    task = load_task(task_name, data_dir=data_dir)
    return robustness(model, task.test, columns or COLUMNS[task_name], seed=seed, value_range=task.data_range)
