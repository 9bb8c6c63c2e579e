"""Run a sweep through an executor, keeping the results store and its index up to date."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from ..data.files import atomic_write_text
from .executors import LocalExecutor
from ..errors import ConfigError
from ..locking import FolderLock
from ..provenance import code_version
from .sweep import SWEEP_COPY, RunSpec, Sweep, run_folder, write_index


def plan_jobs(sweep: Sweep, out: Path, workers: int, data_dir=None, download=False, progress=False,
              code: dict | None = None) -> list[dict]:
    """Jobs for the runs without a result: seeds of one configuration are split into at
    most ``workers`` chunks (each chunk may train as one seed-batched ensemble). ``code``: the
    code version the results record (the caller's, read once when the sweep starts, so a
    commit made during a long sweep is not claimed)."""
    jobs = []
    for spec in sweep.runs:
        pending = [s for s in spec.seeds if not (run_folder(out, spec.name, s) / "result.json").is_file()]
        if not pending:
            continue
        chunks = [pending[i::workers] for i in range(min(workers, len(pending)))] if spec.batch_seeds \
            else [[s] for s in pending]
        for chunk in chunks:
            jobs.append({"task": sweep.task, "task_options": sweep.task_options, "data_dir": None if data_dir is None else str(data_dir),
                         "download": download, "out": str(out), "columns": sweep.columns,
                         "spec": {**asdict(spec), "code": code}, "seeds": chunk, "progress": progress})
    if sweep.order == "seed":  # every run's first seed, then every run's second, ...
        jobs = [j for _, j in sorted(enumerate(jobs), key=lambda ij: (min(ij[1]["seeds"]), ij[0]))]
    return jobs


def merge_with_store(out: Path, sweep: Sweep) -> Sweep:
    """The runs already recorded in the store at ``out`` plus ``sweep``'s (same-named runs: the
    new one, with the seeds of both if the configs are equal), so a store can be filled in
    several calls (``reproduce ecg --models nrnn`` then ``--models lipschitz``) and reports all."""
    path = Path(out) / SWEEP_COPY
    if not path.is_file():
        return sweep
    stored = json.loads(path.read_text())
    if stored["task"] != sweep.task or list(stored["columns"]) != list(sweep.columns) \
            or stored.get("task_options", {}) != sweep.task_options:
        raise ConfigError(f"the results store {out} holds a sweep on task {stored['task']!r} with columns "
                          f"{stored['columns']}; this one is on {sweep.task!r} with {sweep.columns}: use another --out")
    runs = {r["name"]: RunSpec(**r) for r in stored["runs"]}
    for r in sweep.runs:
        old = runs.get(r.name)
        seeds = sorted(set(old.seeds) | set(r.seeds)) if old is not None and old.config == r.config else r.seeds
        runs[r.name] = RunSpec(r.name, r.model, r.config, seeds, r.batch_seeds)
    return Sweep(sweep.task, list(runs.values()), sweep.columns, sweep.description, sweep.source, sweep.task_options,
                 sweep.order)


def run_sweep(sweep: Sweep, out, executor=None, data_dir=None, download=False, progress=False, log=print,
              wait: bool = False) -> list[dict]:
    """Run every unfinished run of ``sweep`` into the store at ``out``; returns the index rows
    (of every run the store holds, see :func:`merge_with_store`). The store is owned by this
    call: a second process fails at once naming the holder (or, with ``wait``, queues behind it)."""
    out = Path(out)
    with FolderLock(out, what="results store", wait=wait, hint="or pass --wait to queue behind it"):
        return _run_owned(sweep, out, executor, data_dir, download, progress, log)


def _run_owned(sweep: Sweep, out: Path, executor, data_dir, download, progress, log) -> list[dict]:
    executor = executor or LocalExecutor()
    stored = merge_with_store(out, sweep)
    atomic_write_text(out / SWEEP_COPY, json.dumps({"task": stored.task, "task_options": stored.task_options,
                                                    "columns": stored.columns,
                                                    "runs": [asdict(r) for r in stored.runs]}, indent=2))
    write_index(out, stored)
    jobs = plan_jobs(sweep, out, getattr(executor, "workers", 1), data_dir, download, progress, code_version())
    t0 = time.perf_counter()
    for job, outcomes in executor.run(jobs):
        write_index(out, stored)
        for rec in outcomes if log else []:
            if rec is None:
                continue
            if rec.get("status") == "failed":
                log(f"{rec['run']:>24s} seed {rec['seed']}: FAILED {rec['error']}")
            else:
                acc = rec["accuracy"]
                log(f"{rec['run']:>24s} seed {rec['seed']}: " + "  ".join(f"{c}={acc[c]:.4f}" for c in sweep.columns))
    rows = write_index(out, stored)
    if log:
        done = sum(r["status"] == "done" for r in rows)
        failed = sum(r["status"] == "failed" for r in rows)
        log(f"sweep: {done} done, {failed} failed, {len(rows) - done - failed} pending; "
            f"{len(jobs)} job(s) ran in {time.perf_counter() - t0:.0f} s")
    return rows
