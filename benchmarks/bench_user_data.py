"""Own-data benchmark: NRNN, Lipschitz RNN and LSTM against aeon's MiniRocket on real
UCR/UEA datasets that aeon ships inside its package (offline).

Rows per dataset: ``nrnn``, ``lipschitz``, ``lstm`` with the library defaults and with the
validation search (``noisyrnn.experiments.search``: grid over noise level, step and learning
rate, one seed per candidate, chosen on validation accuracy under ``white_0.4``, the same
perturbation selecting the epoch; averaged over 3 stratified validation splits where the
validation split holds fewer than 20 sequences), then 5 seeds of the chosen configuration; and
``MiniRocketClassifier`` (aeon, 5 seeds, in a child process), fitted on the same z-scored,
zero-padded training and validation sequences. Columns: clean and additive white noise sigma = 0.4, 0.8, 1.2 on the
z-scored test data (real steps only; the same draws for every model), mean +- sample std over
seeds, and fit time per seed (seed-batched NRNN/Lipschitz runs: the ensemble's time / 5;
the search's total time is reported apart). Everything runs in this process (torch threads =
cores), through resumable result stores under ``--work``.

    python benchmarks/bench_user_data.py --out docs/results/user_data [--work results/bench_user_data] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from noisyrnn.data import load_task
from noisyrnn.data.files import atomic_write_text
from noisyrnn.evaluation import perturbation_seed, real_steps_only
from noisyrnn.experiments.paper import USER_COLUMNS
from noisyrnn.experiments.runner import run_sweep
from noisyrnn.experiments.search import search
from noisyrnn.experiments.sweep import parse_sweep, read_outcome
from noisyrnn.perturbations import parse_column

DATASETS = ["GunPoint", "JapaneseVowels", "OSULeaf", "PickupGestureWiimoteZ"]
MODELS = ["nrnn", "lipschitz", "lstm"]
SEEDS = 5
SELECT_UNDER = "white_0.4"


def _records(out: Path, sweep) -> list[dict]:
    spec = sweep.runs[0]
    return [read_outcome(out, spec.name, s) for s in spec.seeds]


def run_models(task_name: str, model: str, work: Path, config_overrides: dict | None, label: str, log,
               executor=None) -> dict:
    raw = {"task": task_name, "models": [model], "seeds": SEEDS,
           "overrides": {model: config_overrides or {}}, "description": f"{label} {model} on {task_name}"}
    sweep = parse_sweep(raw)
    out = work / label / model
    t0 = time.perf_counter()
    run_sweep(sweep, out, executor, log=None)
    recs = _records(out, sweep)
    failed = [r for r in recs if r is None or r.get("status") != "done"]
    if failed:
        raise RuntimeError(f"{label} {model} on {task_name}: {len(failed)} run(s) failed: "
                           f"{[r.get('error') for r in failed if r]}")
    log(f"  {label:8s} {model:9s} {time.perf_counter() - t0:6.0f} s  clean "
        f"{statistics.mean(r['accuracy']['clean'] for r in recs):.3f}")
    return {"accuracy": {c: [r["accuracy"][c] for r in recs] for c in USER_COLUMNS},
            "fit_seconds": [r["train_seconds"] / max(r.get("trained_with_seeds_batched", 1), 1) for r in recs],
            "config": recs[0]["config"]}


def recorded_seconds(folder: Path) -> float:
    """Compute time of every run in a results store, as its result.json records it (train +
    evaluation; a seed-batched ensemble's time shared among its members), so the figure is the
    same whether the store was filled now or resumed from an earlier invocation."""
    return sum(json.loads(p.read_text()).get("seconds", 0.0) for p in Path(folder).rglob("result.json"))


def flat_overrides(config: dict) -> dict:
    return {**{f"params.{k}": v for k, v in config["params"].items()},
            **{f"train.{k}": v for k, v in config["train"].items() if k != "seed"}}


def minirocket(task_name: str, seeds, log) -> dict:
    """MiniRocket in a child process: numba's worker threads, left spinning in this process,
    made the following torch runs 3-4x slower here (measured: 1.15 vs 0.32 s per epoch)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        result = pool.submit(_minirocket, task_name, list(seeds)).result()
    log(f"  minirocket          clean {statistics.mean(result['accuracy']['clean']):.3f}")
    return result


def _minirocket(task_name: str, seeds) -> dict:
    from aeon.classification.convolution_based import MiniRocketClassifier

    task = load_task(task_name)
    x_fit = torch.cat([task.train.x, task.val.x]).numpy().transpose(0, 2, 1).astype(np.float64)
    y_fit = torch.cat([task.train.y, task.val.y]).numpy()
    MiniRocketClassifier(random_state=0, n_jobs=1).fit(x_fit[:4], y_fit[:4]) if len(set(y_fit[:4])) > 1 else None
    acc = {c: [] for c in USER_COLUMNS}
    fit_seconds = []
    for seed in seeds:
        t0 = time.perf_counter()
        clf = MiniRocketClassifier(random_state=seed, n_jobs=1).fit(x_fit, y_fit)
        fit_seconds.append(time.perf_counter() - t0)
        for column in USER_COLUMNS:
            x = task.test.x
            pert = parse_column(column, task.data_range)
            if pert is not None:  # the draws robustness() makes for this seed and column
                g = torch.Generator().manual_seed(perturbation_seed(seed, column))
                x = real_steps_only(pert(x, g), x, task.test.lengths)
            pred = clf.predict(x.numpy().transpose(0, 2, 1).astype(np.float64))
            acc[column].append(float((pred == task.test.y.numpy()).mean()))
    return {"accuracy": acc, "fit_seconds": fit_seconds}


def summary(values) -> str:
    m = 100 * statistics.mean(values)
    s = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.1f} ± {s:.1f}"


def write_report(out: Path, results: dict) -> None:
    lines = ["# Own-data benchmark: UCR/UEA datasets shipped with aeon", "",
             f"Command: `python benchmarks/bench_user_data.py --out {out} --workers {results['workers']}`. Test accuracy in % (mean ± sample "
             f"std over seeds 0-{SEEDS - 1}); additive white noise σ on the z-scored test data (real steps only, "
             "the same draws for every model); noise injection off at test time. Fit time: seconds per seed "
             "(seed-batched NRNN/Lipschitz runs: the batch's time / 5). 'search': the validation search "
             f"(selection under {SELECT_UNDER}; 3 validation splits where validation has < 20 sequences), then "
             f"{SEEDS} seeds of the chosen configuration; its own time is in the last column. "
             f"Runs: {results['workers']} local worker process(es), {results['torch_threads_per_worker']} torch "
             "thread(s) each (GunPoint and JapaneseVowels ran with 1 worker x 2 threads, then the store "
             "resumed with 2 x 1; seed chunks of one configuration train as seed-batched ensembles)."
             + ("" if results.get("complete") else " **Partial: not every dataset has finished.**"), ""]
    for ds, rows in results["datasets"].items():
        info = rows.pop("_info")
        lines += [f"## {ds}", "", info, "",
                  "| model | settings | clean | σ = 0.4 | σ = 0.8 | σ = 1.2 | fit time (s/seed) | search time (s) |",
                  "|---|---|---|---|---|---|---|---|"]
        for key, r in rows.items():
            model, _, kind = key.partition("/")
            cells = [summary(r["accuracy"][c]) for c in USER_COLUMNS]
            lines.append(f"| {model} | {kind} | " + " | ".join(cells)
                         + f" | {statistics.mean(r['fit_seconds']):.1f} | {r.get('search_seconds', 0):.0f} |")
            if kind == "search":
                best = r["config"]
                chosen = {k: best["params"][k] for k in ("add_noise", "step") if k in best["params"]}
                chosen["lr"] = best["train"]["lr"]
                lines.append(f"| | chosen: {', '.join(f'{k}={v}' for k, v in chosen.items())} | | | | | | |")
        rows["_info"] = info
        lines.append("")
    compute = results.get("compute_seconds", {})
    lines += ["## Targets", ""] + results["targets"] + [
        "", "Compute time per dataset (every run's recorded time, searches included, plus MiniRocket's fits): "
        + ", ".join(f"{ds} {sec:.0f} s" for ds, sec in compute.items())
        + f"; {sum(compute.values()):.0f} s in all (summed over worker processes)."]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def targets(results: dict) -> list[str]:
    lines, within, ahead = [], 0, 0
    for ds, rows in results["datasets"].items():
        mr = rows["minirocket/defaults"]["accuracy"]
        nr = rows["nrnn/search"]["accuracy"]
        d_clean = 100 * (statistics.mean(nr["clean"]) - statistics.mean(mr["clean"]))
        d_04 = 100 * (statistics.mean(nr["white_0.4"]) - statistics.mean(mr["white_0.4"]))
        within += d_clean >= -5
        ahead += d_04 > 0
        lines.append(f"- {ds}: NRNN (search) - MiniRocket: clean {d_clean:+.1f} points, σ = 0.4 {d_04:+.1f} points")
    n = len(results["datasets"])
    lines.append(f"- clean within 5 points of MiniRocket on {within}/{n} datasets (target: at least {n // 2 + n % 2}); "
                 f"ahead at σ = 0.4 on {ahead}/{n} (target: all)")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--out", type=Path, default=Path("docs/results/user_data"))
    p.add_argument("--work", type=Path, default=Path("results/bench_user_data"))
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--workers", type=int, default=1,
                   help="local worker processes for the runs (cores/workers torch threads each)")
    args = p.parse_args(argv)
    from noisyrnn.experiments.executors import make_executor

    executor = make_executor("local", args.workers, None)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    results = {"datasets": {}, "seeds": SEEDS, "columns": USER_COLUMNS, "select_under": SELECT_UNDER,
               "workers": args.workers, "torch_threads_per_worker": executor.threads,
               "python": sys.version.split()[0]}
    for ds in args.datasets:
        task_name = f"ucr:{ds}"
        task = load_task(task_name)
        info = (f"{len(task.train)} train / {len(task.val)} validation / {len(task.test)} test sequences, "
                f"{task.input_size} channel(s), {task.num_classes} classes, "
                + (f"lengths {int(task.train.lengths.min())}-{int(task.train.lengths.max())}"
                   if task.train.lengths is not None else f"length {task.seq_len}"))
        log(f"{ds}: {info}")
        rows = {"_info": info}
        for model in args.models:
            rows[f"{model}/defaults"] = run_models(task_name, model, args.work / ds, None, "defaults", log, executor)
            s0 = time.perf_counter()
            splits = 3 if len(task.val) < 20 else 1  # repeated hold-out where validation is tiny
            found = search(task_name, model, args.work / ds / "search" / model, select_under=SELECT_UNDER,
                           seeds=1, log=None, splits=splits, executor=executor)
            search_seconds = recorded_seconds(args.work / ds / "search" / model)
            tuned = run_models(task_name, model, args.work / ds, flat_overrides(found["best"]["config"]),
                               "tuned", log, executor)
            tuned["search_seconds"] = search_seconds
            tuned["search_splits"] = splits
            tuned["candidates"] = [{k: c[k] for k in ("run", "status", "score", "clean") if k in c}
                                   for c in found["candidates"]]
            rows[f"{model}/search"] = tuned
        rows["minirocket/defaults"] = minirocket(task_name, range(SEEDS), log)
        results["datasets"][ds] = rows
        results["wall_seconds"] = time.perf_counter() - t0  # this invocation (a resumed store: less)
        results.setdefault("compute_seconds", {})[ds] = recorded_seconds(args.work / ds) + sum(
            rows["minirocket/defaults"]["fit_seconds"])
        results["complete"] = list(results["datasets"]) == list(args.datasets)
        results["targets"] = targets(results) if "nrnn" in args.models else []
        args.out.mkdir(parents=True, exist_ok=True)  # written after every dataset: partial runs report too
        atomic_write_text(args.out / "results.json", json.dumps(results, indent=2))
        write_report(args.out, results)
    print((args.out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
