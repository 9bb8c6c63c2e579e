"""Own-data benchmark with fair baselines: NRNN and Lipschitz RNN against aeon's MiniRocket
on real UCR/UEA datasets that aeon ships inside its package (offline), every model given the
same chance to learn noise robustness.

Rows per dataset (``ROWS``): ``minirocket`` (as it comes) and ``minirocket + aug`` (the
training set plus noisy copies, two per level: its augmentation chosen on validation among
``MINIROCKET_AUG``, as ours; and, for reference, with copies at 0.4 and 0.8 fixed in advance); ``nrnn`` (hidden-state noise, the paper's regulariser, no input
augmentation) and ``nrnn + aug``, ``lipschitz + aug`` (input-noise augmentation
``train.input_noise`` in the search space); the NRNN recipe for long series and small training
sets, by ablation: ``nrnn + aug + windows`` (``params.patch``, samples per step, searched too)
and the same configuration trained as seed ensembles of ``MEMBERS`` models (``n_members``); then
both again with ``train.batch_size = "auto"`` (a tenth of the training split, 1 to 16: many more
updates per epoch on tiny training sets), and both again refitted on training + validation (task
option ``val_fraction = 0``, the last epoch kept, as MiniRocket's rows are refitted); the last two
pairs were added after three datasets' results, see ``LATE_RECIPES``.
Each of ours is the validation search
(``noisyrnn.experiments.search``: a seeded random subset of ``CANDIDATES`` points of the
model's search space, noise level, step, learning rate, hidden size and weight decay,
chosen on validation accuracy under ``white_0.4``, the same perturbation selecting the epoch;
stratified 5-fold where validation holds fewer than 50 sequences), then 5 seeds of the chosen
configuration on the task's own split. Columns: clean and additive white noise sigma = 0.4,
0.8, 1.2 on the z-scored test data (real steps only; the same draws for every model), mean
+- sample std over seeds, fit time per seed (seed-batched runs: the batch's time / 5). Results
also as ``bakeoff.csv``, one row per dataset, classifier and seed (the archive's own
train/test split: resample 0), the long layout of the time-series classification bake-offs.
Everything runs through resumable result stores under ``--work``; the report is rewritten
after every dataset.

    python benchmarks/bench_user_data.py --out docs/results/user_data [--work results/bench_user_data] [--workers 1]
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
from noisyrnn.experiments.search import REFIT_TASK, REFIT_TRAIN, flat_overrides, search
from noisyrnn.experiments.sweep import parse_sweep, read_outcome
from noisyrnn.perturbations import parse_column

DATASETS = ["GunPoint", "JapaneseVowels", "OSULeaf", "PickupGestureWiimoteZ"]
SEEDS = 5
SELECT_UNDER = "white_0.4"
CANDIDATES = 12  # random points of each search space
INPUT_NOISE = {"train.input_noise": [0.4, 0.8, [0.4, 0.8]]}  # ours: sigma, or drawn per batch in [low, high]
MINIROCKET_AUG = {"none": (), "0.4": (0.4,), "0.8": (0.8,), "0.4+0.8": (0.4, 0.8)}  # noisy-copy levels
COPIES = 2  # noisy copies of the training set per level
FIXED_AUG = "minirocket + aug 0.4+0.8 (fixed)"  # the augmentation fixed in advance, not chosen on validation
HEADERS = {"clean": "clean", "white_0.4": "σ = 0.4", "white_0.8": "σ = 0.8", "white_1.2": "σ = 1.2",
           "mult_0.4": "σ_M = 0.4", "mult_0.8": "σ_M = 0.8", "mult_1.2": "σ_M = 1.2"}
WINDOWS = {"params.patch": [1, 4, 16]}  # samples per step (models/windows.py), searched
MEMBERS = 5  # the recipe's seed ensemble: members per model
AUTO_BATCH = {"train.batch_size": "auto"}  # a tenth of the training split, 1 to 16 (parameters.auto_batch_size)
# row label -> (model, extra grid, members, fixed settings); MiniRocket's rows are computed apart.
# A row with members > 1 trains the configuration its search chose as seed ensembles; rows with
# the same model, grid and fixed settings share one search.
ROWS = {"nrnn": ("nrnn", {}, 1, {}), "nrnn + aug": ("nrnn", INPUT_NOISE, 1, {}),
        "lipschitz + aug": ("lipschitz", INPUT_NOISE, 1, {}),
        "nrnn + aug + windows": ("nrnn", {**INPUT_NOISE, **WINDOWS}, 1, {}),
        f"nrnn + aug + windows, {MEMBERS} members": ("nrnn", {**INPUT_NOISE, **WINDOWS}, MEMBERS, {}),
        "nrnn + aug + windows + batch auto": ("nrnn", {**INPUT_NOISE, **WINDOWS}, 1, AUTO_BATCH),
        f"nrnn + aug + windows + batch auto, {MEMBERS} members": ("nrnn", {**INPUT_NOISE, **WINDOWS}, MEMBERS,
                                                                  AUTO_BATCH),
        "nrnn + aug + windows + refit": ("nrnn", {**INPUT_NOISE, **WINDOWS}, 1, {}),
        f"nrnn + aug + windows + refit, {MEMBERS} members": ("nrnn", {**INPUT_NOISE, **WINDOWS}, MEMBERS, {})}
# rows that train the chosen configuration on training + validation (task option val_fraction = 0,
# the last epoch kept), as MiniRocket's rows are refitted
REFIT = {label for label in ROWS if "+ refit" in label}


def _records(out: Path, sweep) -> list[dict]:
    spec = sweep.runs[0]
    return [read_outcome(out, spec.name, s) for s in spec.seeds]


def run_models(task_name: str, model: str, work: Path, config_overrides: dict | None, label: str, log,
               executor=None, task_options: dict | None = None) -> dict:
    raw = {"task": task_name, "models": [model], "seeds": SEEDS,
           "overrides": {model: config_overrides or {}}, "description": f"{label} {model} on {task_name}"}
    if task_options:
        raw["task_options"] = task_options
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


def run_members(task_name: str, model: str, work: Path, config: dict, members: int, label: str, log,
                task_options: dict | None = None) -> dict:
    """SEEDS seed ensembles of ``members`` models of ``config`` (``train_model(n_members=...)``, each
    resumable in its folder), evaluated as the sweeps' runs are (test columns seeded by the seed)."""
    from noisyrnn.evaluation import robustness
    from noisyrnn.training import TrainConfig, train_model

    task = load_task(task_name, **(task_options or {}))
    t0 = time.perf_counter()
    acc, fit_seconds = {c: [] for c in USER_COLUMNS}, []
    for seed in range(SEEDS):
        train = TrainConfig.from_dict({**config["train"], "seed": seed})
        result = train_model(model, config["params"], task, train, out_dir=work / label / f"seed{seed}",
                             progress=False, n_members=members)
        fit_seconds.append(result.seconds)
        for column, value in robustness(result.model, task.test, USER_COLUMNS, seed=seed,
                                        value_range=task.data_range).items():
            acc[column].append(value)
    log(f"  {label:8s} {model:9s} {time.perf_counter() - t0:6.0f} s  clean {statistics.mean(acc['clean']):.3f}")
    return {"accuracy": acc, "fit_seconds": fit_seconds, "config": config, "members": members}


def recorded_seconds(folder: Path) -> float:
    """Compute time of every run in a results store, as its result.json records it (train +
    evaluation; a seed-batched ensemble's time shared among its members), so the figure is the
    same whether the store was filled now or resumed from an earlier invocation."""
    return sum(json.loads(p.read_text()).get("seconds", 0.0) for p in Path(folder).rglob("result.json"))


def slug(label: str) -> str:
    return label.replace(" + ", "_").replace(", ", "_").replace(" ", "_")


def minirocket(task_name: str, seeds, log) -> dict:
    """MiniRocket in a child process: numba's worker threads, left spinning in this process,
    made the following torch runs 3-4x slower here (measured: 1.15 vs 0.32 s per epoch)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        result = pool.submit(_minirocket, task_name, list(seeds)).result()
    for label, r in result.items():
        log(f"  {label:16s} clean {statistics.mean(r['accuracy']['clean']):.3f}"
            + (f"  (augmentation chosen on validation: {r['chosen']})" if "chosen" in r else ""))
    return result


def _noisy(x: torch.Tensor, lengths, sigma: float, g: torch.Generator) -> torch.Tensor:
    return real_steps_only(x + sigma * torch.randn(x.shape, generator=g), x, lengths)


def _augmented(x, y, lengths, levels, seed: int):
    """The training set plus COPIES noisy copies of it per level (real steps only), seeded."""
    g = torch.Generator().manual_seed(10_007 * seed + 17)
    xs, ys = [x], [y]
    for sigma in levels:
        for _ in range(COPIES):
            xs.append(_noisy(x, lengths, sigma, g))
            ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def _minirocket(task_name: str, seeds) -> dict:
    from aeon.classification.convolution_based import MiniRocketClassifier

    def as_aeon(x: torch.Tensor) -> np.ndarray:
        return x.numpy().transpose(0, 2, 1).astype(np.float64)

    def accuracy(clf, x, y) -> float:
        return float((clf.predict(as_aeon(x)) == y.numpy()).mean())

    def perturbed(split, column: str, seed: int) -> torch.Tensor:
        pert = parse_column(column, task.data_range)
        if pert is None:
            return split.x
        g = torch.Generator().manual_seed(perturbation_seed(seed, column))  # the draws robustness() makes
        return real_steps_only(pert(split.x, g), split.x, split.lengths)

    task = load_task(task_name)
    # choose the augmentation on validation (fit on train, score under SELECT_UNDER then clean), seed 0
    val_scores = {}
    for name, levels in MINIROCKET_AUG.items():
        x, y = _augmented(task.train.x, task.train.y, task.train.lengths, levels, 0)
        clf = MiniRocketClassifier(random_state=0, n_jobs=1).fit(as_aeon(x), y.numpy())
        val_scores[name] = (accuracy(clf, perturbed(task.val, SELECT_UNDER, 0), task.val.y),
                            accuracy(clf, task.val.x, task.val.y))
    chosen = max(MINIROCKET_AUG, key=lambda n: val_scores[n])
    pooled_x, pooled_y = torch.cat([task.train.x, task.val.x]), torch.cat([task.train.y, task.val.y])
    pooled_len = None if task.train.lengths is None else torch.cat([task.train.lengths, task.val.lengths])
    out = {}
    for label, levels in (("minirocket", ()), ("minirocket + aug", MINIROCKET_AUG[chosen]),
                          (FIXED_AUG, MINIROCKET_AUG["0.4+0.8"])):
        acc, fit_seconds = {c: [] for c in USER_COLUMNS}, []
        for seed in seeds:
            x, y = _augmented(pooled_x, pooled_y, pooled_len, levels, seed)
            t0 = time.perf_counter()
            clf = MiniRocketClassifier(random_state=seed, n_jobs=1).fit(as_aeon(x), y.numpy())
            fit_seconds.append(time.perf_counter() - t0)
            for column in USER_COLUMNS:
                acc[column].append(accuracy(clf, perturbed(task.test, column, seed), task.test.y))
        out[label] = {"accuracy": acc, "fit_seconds": fit_seconds}
    out["minirocket + aug"].update(chosen=chosen, validation={k: list(v) for k, v in val_scores.items()})
    return out


def summary(values) -> str:
    m = 100 * statistics.mean(values)
    s = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.1f} ± {s:.1f}"


def chosen_settings(row: dict) -> str:
    if "chosen" in row:
        return f"noisy copies: {row['chosen']}"
    best = row.get("config")
    if not best:
        return ""
    keys = ("add_noise", "step", "hidden_size", "patch")
    chosen = {k: best["params"][k] for k in keys if k in best["params"]}
    chosen.update({k: best["train"][k] for k in ("lr", "weight_decay", "input_noise") if k in best["train"]})
    if best["train"].get("batch_size", 32) != 32:
        chosen["batch_size"] = best["train"]["batch_size"]
    if row.get("members", 1) > 1:
        chosen["n_members"] = row["members"]
    if row.get("refit"):
        chosen["refit"] = "train + validation, last epoch"
    return ", ".join(f"{k}={v}" for k, v in chosen.items())


def write_report(out: Path, results: dict) -> None:
    lines = ["# Own-data benchmark with fair baselines: UCR/UEA datasets shipped with aeon", "",
             f"Command: `python benchmarks/bench_user_data.py --out {out} --workers {results['workers']}` "
             f"({results['workers']} local worker process(es), {results['torch_threads_per_worker']} torch thread(s) "
             f"each). Test accuracy in % (mean ± sample std over seeds 0-{SEEDS - 1}); additive white noise σ on the "
             "z-scored test data (real steps only, the same draws for every model); noise injection off at test "
             f"time; σ_M: multiplicative noise x (1 + σ_M ε). Every model may learn robustness: MiniRocket + aug trains on the training set plus {COPIES} "
             "noisy copies per level, its levels chosen on validation; ours search their hidden-state noise "
             "(nrnn) and input-noise augmentation (+ aug) on validation. Our searches: "
             f"{results['candidates']} random points of the model's search space, chosen on validation accuracy under "
             f"{SELECT_UNDER} (stratified 5-fold where validation holds < 50 sequences), then {SEEDS} seeds of the "
             f"chosen configuration; the last of ours trains that configuration as seed ensembles of {MEMBERS} "
             "(`n_members`), 5 seeds of them; the rows \"+ batch auto\" repeat the windows search and both rows "
             "with `train.batch_size = \"auto\"` (a tenth of the training split, 1 to 16); the rows \"+ refit\" "
             "train the windows search's choice on training + validation, keeping the last epoch. "
             "Fit time: seconds per seed (seed-batched runs: the batch's time / 5; "
             "an ensemble: the whole ensemble's); "
             "search time: the whole search's recorded compute. Per seed, per column: `bakeoff.csv`."
             + ("" if results.get("complete") else " **Partial: not every dataset has finished.**"), ""]
    for ds, rows in results["datasets"].items():
        lines += [f"## {ds}", "", results["info"][ds], "",
                  "| model | " + " | ".join(HEADERS.get(c, c) for c in USER_COLUMNS)
                  + " | fit time (s/seed) | search time (s) | chosen on validation |",
                  "|---" * (len(USER_COLUMNS) + 4) + "|"]
        for label, r in rows.items():
            cells = [summary(r["accuracy"][c]) for c in USER_COLUMNS]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {statistics.mean(r['fit_seconds']):.1f} | "
                         f"{r.get('search_seconds', 0):.0f} | {chosen_settings(r)} |")
        lines.append("")
    compute = results.get("compute_seconds", {})
    lines += ["## Targets", "", f"The recipe fixed before any test result was seen ({RECIPE_LABEL}):", ""]
    lines += results["targets"]
    for recipe, why in LATE_RECIPES.items():
        if results.get("late_targets", {}).get(recipe):
            lines += ["", f"The recipe {recipe}, added after the test results of GunPoint, JapaneseVowels and "
                      f"PickupGestureWiimoteZ were seen ({why}); its choices are still made on validation only:",
                      ""] + results["late_targets"][recipe]
    lines += [
        "", "Compute time per dataset (every run's recorded time, searches included, plus MiniRocket's fits): "
        + ", ".join(f"{ds} {sec:.0f} s" for ds, sec in compute.items())
        + f"; {sum(compute.values()):.0f} s in all (summed over worker processes)."]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


RECIPE_LABEL = f"nrnn + aug + windows, {MEMBERS} members"  # the recipe fixed before any test result
# added after the test results of three datasets were seen: their training curves showed the
# models underfitting tiny training sets (two updates per epoch at batches of 32); said so wherever reported
LATE_RECIPES = {f"nrnn + aug + windows + batch auto, {MEMBERS} members":
                "their training curves showed the models underfitting: two updates per epoch on 40 training sequences",
                f"nrnn + aug + windows + refit, {MEMBERS} members":
                "the chosen configuration trained on training + validation, as MiniRocket's rows are refitted"}
SUMMARY_ROWS = ("nrnn", "lipschitz + aug", RECIPE_LABEL, *LATE_RECIPES, "minirocket", "minirocket + aug", FIXED_AUG)


def write_summary(out: Path, results: dict) -> None:
    """``summary.md``: the README's table (clean and white noise, fit time) for the headline rows."""
    lines = ["| dataset | model | clean | σ = 0.4 | σ = 0.8 | σ = 1.2 | fit s/seed |", "|---|---|---|---|---|---|---|"]
    for ds, rows in results["datasets"].items():
        first = True
        for label in SUMMARY_ROWS:
            if label not in rows:
                continue
            r = rows[label]
            cells = [summary(r["accuracy"][c]) for c in ("clean", "white_0.4", "white_0.8", "white_1.2")]
            lines.append(f"| {ds if first else ''} | {label} | " + " | ".join(cells)
                         + f" | {statistics.mean(r['fit_seconds']):.1f} |")
            first = False
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")


def write_bakeoff(out: Path, results: dict) -> None:
    """One row per dataset, classifier and seed: accuracy per column and fit time."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "classifier", "resample", "seed", *[f"accuracy_{c}" for c in USER_COLUMNS],
                "fit_seconds"])
    for ds, rows in results["datasets"].items():
        for label, r in rows.items():
            for i in range(SEEDS):
                w.writerow([ds, label, 0, i, *[f"{r['accuracy'][c][i]:.6f}" for c in USER_COLUMNS],
                            f"{r['fit_seconds'][i]:.3f}"])
    atomic_write_text(out / "bakeoff.csv", buf.getvalue())


def targets(results: dict, recipe: str = RECIPE_LABEL, only_where_run: bool = False) -> list[str]:
    """The recipe per dataset (``recipe`` where it ran, else, unless ``only_where_run``, the row
    of ours with the best validation score: choices made on validation only) against MiniRocket
    + aug: ahead at sigma = 0.8 and 1.2, clean within 3 points."""
    lines, robust, clean, n = [], {"white_0.8": 0, "white_1.2": 0}, 0, 0
    for ds, rows in results["datasets"].items():
        if "minirocket + aug" not in rows or (only_where_run and recipe not in rows):
            continue
        n += 1
        mr = rows["minirocket + aug"]["accuracy"]
        ours = {label: r["accuracy"] for label, r in rows.items() if not label.startswith("minirocket")}
        best = recipe if recipe in ours else max(ours, key=lambda lb: results["validation_scores"][ds][lb])
        nr = ours[best]
        diff = {c: 100 * (statistics.mean(nr[c]) - statistics.mean(mr[c])) for c in USER_COLUMNS}
        for c in robust:
            robust[c] += diff[c] >= 0
        clean += diff["clean"] >= -3
        lines.append(f"- {ds}: {best} - MiniRocket + aug: "
                     + ", ".join(f"{c} {diff[c]:+.1f}" for c in USER_COLUMNS) + " points")
        if FIXED_AUG in rows:
            fixed = rows[FIXED_AUG]["accuracy"]
            lines.append(f"  (against MiniRocket with copies at 0.4 and 0.8 fixed in advance: " + ", ".join(
                f"{c} {100 * (statistics.mean(nr[c]) - statistics.mean(fixed[c])):+.1f}" for c in USER_COLUMNS) + ")")
    if n:
        lines.append(f"- at σ = 0.8 ahead or level on {robust['white_0.8']}/{n}, at σ = 1.2 on {robust['white_1.2']}/{n} "
                     f"(target: at least 3 of 4 each); clean within 3 points on {clean}/{n} (target: at least 2 of 4)")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--out", type=Path, default=Path("docs/results/user_data"))
    p.add_argument("--work", type=Path, default=Path("results/bench_user_data"))
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--workers", type=int, default=1,
                   help="local worker processes for the runs (cores/workers torch threads each)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores/workers)")
    p.add_argument("--candidates", type=int, default=CANDIDATES, help="random points of each search space")
    p.add_argument("--epochs", type=int, default=None, help="train.epochs for every run (default: the library's)")
    p.add_argument("--render", action="store_true",
                   help="only rewrite report.md, bakeoff.csv and summary.md from OUT/results.json (no training)")
    p.add_argument("--refresh-minirocket", action="store_true",
                   help="recompute MiniRocket's rows for the datasets in OUT/results.json, then --render")
    args = p.parse_args(argv)
    if args.render or args.refresh_minirocket:
        results = json.loads((args.out / "results.json").read_text())
        if args.refresh_minirocket:  # seconds per dataset: MiniRocket's rows again, with this code's variants
            for ds, rows in results["datasets"].items():
                rows.update(minirocket(f"ucr:{ds}", range(SEEDS), lambda msg: print(msg, flush=True)))
            atomic_write_text(args.out / "results.json", json.dumps(results, indent=2))
        results["targets"] = targets(results)
        results["late_targets"] = {r: targets(results, r, only_where_run=True) for r in LATE_RECIPES}
        write_report(args.out, results)
        write_bakeoff(args.out, results)
        write_summary(args.out, results)
        print((args.out / "report.md").read_text())
        return 0
    from noisyrnn.experiments.executors import make_executor
    from noisyrnn.experiments.search import SEARCH_SPACES

    executor = make_executor("local", args.workers, None, args.threads)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    results = {"datasets": {}, "info": {}, "validation_scores": {}, "seeds": SEEDS, "columns": USER_COLUMNS,
               "select_under": SELECT_UNDER, "candidates": args.candidates, "epochs": args.epochs,
               "workers": args.workers,
               "torch_threads_per_worker": executor.threads, "python": sys.version.split()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    for ds in args.datasets:
        task_name = f"ucr:{ds}"
        task = load_task(task_name)
        info = (f"{len(task.train)} train / {len(task.val)} validation / {len(task.test)} test sequences, "
                f"{task.input_size} channel(s), {task.num_classes} classes, "
                + (f"lengths {int(task.train.lengths.min())}-{int(task.train.lengths.max())}"
                   if task.train.lengths is not None else f"length {task.seq_len}"))
        log(f"{ds}: {info}")
        results["info"][ds] = info
        rows, scores = {}, {}
        for label in args.rows:
            model, extra, members, fixed = ROWS[label]
            searched = next(lb for lb, row in ROWS.items() if (row[:2], row[3]) == ((model, extra), fixed))
            store = args.work / ds / "search" / slug(searched)
            epochs = {} if args.epochs is None else {"train.epochs": args.epochs}
            found = search(task_name, model, store, grid={**SEARCH_SPACES[model], **extra}, select_under=SELECT_UNDER,
                           seeds=1, log=None, executor=executor, candidates=args.candidates,
                           overrides={**epochs, **fixed})
            config, options, refit = found["best"]["config"], None, label in REFIT
            if refit:
                config, options = {**config, "train": {**config["train"], **REFIT_TRAIN}}, REFIT_TASK
            if members > 1:
                tuned = run_members(task_name, model, args.work / ds, config, members, slug(label), log, options)
            else:
                tuned = run_models(task_name, model, args.work / ds, flat_overrides(config), slug(label), log, executor,
                                   options)
            tuned.update(search_seconds=recorded_seconds(store), folds=found["folds"],
                         validation_score=found["best"]["score"],
                         candidates=[{k: c[k] for k in ("run", "status", "score", "clean") if k in c}
                                     for c in found["candidates"]], **({"refit": True} if refit else {}))
            rows[label] = tuned
            scores[label] = (found["best"]["score"], found["best"]["clean"])
        rows.update(minirocket(task_name, range(SEEDS), log))
        results["datasets"][ds] = rows
        results["validation_scores"][ds] = scores
        results.setdefault("compute_seconds", {})[ds] = recorded_seconds(args.work / ds) + sum(
            sum(rows[k]["fit_seconds"]) for k in rows if k.startswith("minirocket"))
        results["complete"] = list(results["datasets"]) == list(args.datasets)
        results["targets"] = targets(results)
        results["late_targets"] = {r: targets(results, r, only_where_run=True) for r in LATE_RECIPES}
        atomic_write_text(args.out / "results.json", json.dumps(results, indent=2))  # after every dataset
        write_report(args.out, results)
        write_bakeoff(args.out, results)
        write_summary(args.out, results)
    print((args.out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
