"""``noisyrnn search``: a small validation search over noise level, step and learning rate.

No default fits every dataset, so the search trains a grid of configurations (the sweep
machinery: a resumable results store, any executor) and picks the one with the best
validation accuracy, clean or under a named perturbation (``select_under``, e.g.
``white_0.4``, ties broken by clean accuracy), averaged over the search seeds and over the
validation splits. Small datasets need more than one split (a 20% split of 50 sequences is
10 of them): on user data with fewer than :data:`KFOLD_BELOW` validation sequences the
search runs a stratified K-fold (``folds``, default :data:`KFOLD`: every training sequence is
validation once, each fold's model trained on the rest); ``splits`` asks for repeated
hold-out instead (split seeds 0..splits-1). Test data never enter the choice.
``OUT/best.json`` records the winner and every candidate's scores. With ``refit`` the winner
is then trained on every labelled sequence (``OUT/refit``), as scikit-learn's ``refit``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..data import is_user_task, load_task
from ..data.files import atomic_write_text
from ..errors import ConfigError
from .runner import run_sweep
from .sweep import parse_sweep, read_outcome

# Per model: grid keys in sweep notation. Noise levels are research-code add_noise values
# (the paper's ECG level is 0.06); steps bracket the recipes' 0.03-0.1; every model also
# searches its hidden size and weight decay (SIZE_AND_DECAY). Large grids are searched by a
# seeded random subset of their points (``candidates``).
SIZE_AND_DECAY = {"params.hidden_size": [64, 128], "train.weight_decay": [0.0, 0.0001]}
SEARCH_SPACES: dict[str, dict[str, list]] = {
    "nrnn": {"params.add_noise": [0.06, 0.2, 0.5], "params.step": [0.03, 0.1], "train.lr": [0.001, 0.003]},
    "lipschitz": {"params.step": [0.03, 0.1], "train.lr": [0.001, 0.003]},
    "antisymmetric": {"params.step": [0.01, 0.1], "train.lr": [0.001, 0.003]},
    "antisymmetric_gated": {"params.step": [0.01, 0.1], "train.lr": [0.001, 0.003]},
    "cornn": {"params.dt": [0.02, 0.042, 0.1], "train.lr": [0.001, 0.003]},
    "exprnn": {"train.lr": [0.0003, 0.001, 0.003]},
    "lstm": {"train.lr": [0.001, 0.003, 0.01]},
    "gru": {"train.lr": [0.001, 0.003, 0.01]},
}
SEARCH_SPACES["nrnn_high"] = SEARCH_SPACES["nrnn"]
for _space in SEARCH_SPACES.values():
    _space.update(SIZE_AND_DECAY)
KFOLD, KFOLD_BELOW = 5, 50  # K-fold selection where validation holds fewer than 50 sequences
DEFAULT_CANDIDATES = 16  # random points of a model's own search space unless asked otherwise


def parse_grid(items) -> dict[str, list]:
    """``KEY=V1,V2`` strings (KEY as in sweeps: params.NAME / train.NAME) to a grid."""
    grid = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        key, values = item.split("=", 1)
        parsed = []
        for v in values.split(","):
            try:
                parsed.append(json.loads(v))
            except json.JSONDecodeError:
                parsed.append(v)
        grid[key] = parsed
    return grid


def subset(sweep, candidates: int | None, seed: int = 0):
    """The sweep with a seeded random subset of ``candidates`` of its runs (grid order kept);
    the whole sweep when ``candidates`` is None or covers it."""
    import random

    if candidates is None or int(candidates) >= len(sweep.runs):
        return sweep
    keep = sorted(random.Random(seed).sample(range(len(sweep.runs)), int(candidates)))
    return dataclasses.replace(sweep, runs=[sweep.runs[i] for i in keep])


def score(record: dict, select_under: str | None) -> tuple[float, float]:
    val = record["validation"]
    return (val[select_under], val["clean"]) if select_under else (val["clean"], 0.0)


def validation_plan(task: str, splits: int = 1, folds: int | None = None, data_dir=None,
                    download: bool = False) -> list[dict]:
    """The task options of each validation split the search averages over: ``[{}]`` (the
    task's own split), K folds ``{"fold": k, "folds": K, "split_seed": 0}``, or ``splits``
    hold-outs ``{"split_seed": k}``. ``folds=None``: K-fold (K = :data:`KFOLD`) on user data
    whose validation split holds fewer than :data:`KFOLD_BELOW` sequences, unless ``splits > 1``."""
    if int(splits) < 1:
        raise ConfigError(f"splits must be >= 1, got {splits}")
    if folds is not None and int(folds) < 1:
        raise ConfigError(f"folds must be >= 2 (or 1: no folds), got {folds}")
    if not is_user_task(task):
        if splits > 1 or (folds or 1) > 1:
            raise ConfigError(f"--splits and --folds apply to user data; the paper task {task!r} has a fixed "
                              "validation split")
        return [{}]
    if splits > 1 and (folds or 1) > 1:
        raise ConfigError("choose either --splits (repeated hold-out) or --folds (K-fold), not both")
    if folds is None and splits == 1:
        folds = KFOLD if len(load_task(task, data_dir=data_dir, download=download).val) < KFOLD_BELOW else 1
    if (folds or 1) > 1:
        plan = [{"fold": k, "folds": int(folds), "split_seed": 0} for k in range(int(folds))]
        load_task(task, data_dir=data_dir, download=download, **plan[0])  # a named error now if K does not fit
        return plan
    return [{"split_seed": k} for k in range(int(splits))] if splits > 1 else [{}]


# the refit: every labelled sequence trains (no validation split), so the last epoch is kept
REFIT_TASK = {"val_fraction": 0}
REFIT_TRAIN = {"select": "last", "select_under": None}


def flat_overrides(config: dict) -> dict:
    """A run's config ({"params": ..., "train": ...}) as sweep overrides (``params.NAME``,
    ``train.NAME``; the seed left to the sweep)."""
    return {**{f"params.{k}": v for k, v in config["params"].items()},
            **{f"train.{k}": v for k, v in config["train"].items() if k != "seed"}}


def require_user_data(task: str) -> None:
    if not is_user_task(task):
        raise ConfigError(f"refit applies to user data; the paper task {task!r} keeps its fixed validation split")


def refit_chosen(task: str, model: str, out, config: dict, seeds: int = 1, executor=None, data_dir=None,
                 download: bool = False, progress: bool = False, log=print, wait: bool = False) -> dict:
    """scikit-learn's ``refit`` for a recurrent model: train ``config`` (the search's choice) on
    every labelled sequence (training + validation: task option ``val_fraction = 0``) for its
    configured epochs and keep the last one, since nothing is held out to select an epoch on;
    into the store ``out/refit``. Returns the store and the trained runs' folders (each with
    ``model.safetensors``, for ``noisyrnn predict`` / ``export`` / ``stream``). User data only."""
    require_user_data(task)
    chosen = {**config, "train": {**config["train"], **REFIT_TRAIN}}
    sweep = parse_sweep({"task": task, "models": [model], "seeds": seeds, "task_options": dict(REFIT_TASK),
                         "overrides": {model: flat_overrides(chosen)},
                         "description": f"refit of the search's choice for {model} on {task}"})
    store = Path(out) / "refit"
    run_sweep(sweep, store, executor, data_dir=data_dir, download=download, progress=progress, log=log, wait=wait)
    spec = sweep.runs[0]
    failed = [s for s in spec.seeds if (read_outcome(store, spec.name, s) or {}).get("status") != "done"]
    if failed:
        raise ConfigError(f"the refit failed for seed(s) {failed}; see {store / 'runs' / spec.name}/seed*/error.json")
    return {"store": str(store), "runs": [str(store / "runs" / spec.name / f"seed{s}") for s in spec.seeds]}


def score_candidates(sweep, stores, select_under: str | None) -> list[dict]:
    """Each candidate of ``sweep`` with its score averaged over the validation ``stores`` (one per
    split or fold) and seeds; "failed" if any of its runs did not finish."""
    candidates = []
    for spec in sweep.runs:
        recs = [read_outcome(store, spec.name, s) for store in stores for s in spec.seeds]
        if any(r is None or r.get("status") != "done" for r in recs):
            candidates.append({"run": spec.name, "status": "failed", "config": spec.config})
            continue
        scores = [score(r, select_under) for r in recs]
        mean = tuple(sum(s[i] for s in scores) / len(scores) for i in range(2))
        candidates.append({"run": spec.name, "status": "done", "score": mean[0], "clean": mean[1] if select_under
                           else mean[0], "config": spec.config})
    return candidates


def resolve_grid(model: str, grid: dict | None, candidates: int | None) -> tuple[dict, int | None]:
    """(grid, candidates): a given grid, searched whole unless ``candidates`` says otherwise, or
    the model's :data:`SEARCH_SPACES` entry, by :data:`DEFAULT_CANDIDATES` random points unless
    ``candidates`` says otherwise."""
    if candidates is not None and int(candidates) < 1:
        raise ConfigError(f"candidates must be >= 1, got {candidates}")
    if not grid:
        grid = SEARCH_SPACES.get(model)
        if candidates is None:
            candidates = DEFAULT_CANDIDATES
    if not grid:
        raise ConfigError(f"no search space for model {model!r}; pass --grid KEY=V1,V2")
    return grid, candidates


def search(task: str, model: str, out, grid=None, select_under: str | None = None, seeds: int = 1,
           overrides: dict | None = None, executor=None, data_dir=None, download: bool = False,
           progress: bool = False, log=print, splits: int = 1, wait: bool = False, folds: int | None = None,
           candidates: int | None = None, refit: bool = False) -> dict:
    """Run the search into the store ``out`` (``out/fold{k}`` or ``out/split{k}`` per validation
    split when there are several, see :func:`validation_plan`); returns (and writes to
    ``out/best.json``) the result. ``candidates``: search a seeded random subset of that many
    grid points (random search) instead of the whole grid; the same subset on every split.
    Without ``grid`` the model's :data:`SEARCH_SPACES` entry is searched, by
    :data:`DEFAULT_CANDIDATES` random points unless ``candidates`` says otherwise. ``refit``:
    then train the winner on every labelled sequence (:func:`refit_chosen`; ``result["refit"]``)."""
    if refit:
        require_user_data(task)  # refused before the search, not after it
    grid, candidates = resolve_grid(model, grid, candidates)
    plan = validation_plan(task, splits, folds, data_dir, download)
    over = dict(overrides or {})
    if select_under:
        over["train.select_under"] = select_under
    stores = []
    for k, options in enumerate(plan):
        raw = {"task": task, "models": [model], "seeds": seeds, "grid": grid, "overrides": {model: over},
               "description": f"validation search for {model} on {task}"}
        if options:
            raw["task_options"] = options
        sweep = subset(parse_sweep(raw), candidates)
        store = Path(out) / (("fold" if "fold" in options else "split") + str(k)) if len(plan) > 1 else Path(out)
        run_sweep(sweep, store, executor, data_dir=data_dir, download=download, progress=progress, log=log,
                  wait=wait)
        stores.append(store)
    candidates = score_candidates(sweep, stores, select_under)
    done = [c for c in candidates if c["status"] == "done"]
    if not done:
        raise ConfigError(f"every run of the search failed; see {Path(out) / 'runs'}/*/seed*/error.json")
    best = max(done, key=lambda c: (c["score"], c["clean"]))
    folded = "fold" in plan[0]
    result = {"task": task, "model": model, "select_under": select_under, "seeds": seeds,
              "splits": 1 if folded else len(plan), "folds": len(plan) if folded else 1, "grid": grid,
              "n_candidates": len(sweep.runs),
              "best": best, "candidates": candidates}
    atomic_write_text(Path(out) / "best.json", json.dumps(result, indent=2))
    if refit:
        result["refit"] = refit_chosen(task, model, out, best["config"], seeds, executor, data_dir, download,
                                       progress, log, wait)
        atomic_write_text(Path(out) / "best.json", json.dumps(result, indent=2))
    return result
