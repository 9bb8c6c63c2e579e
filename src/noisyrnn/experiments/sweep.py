"""Declarative sweeps: an experiment is a TOML file; runs land in a resumable results store.

A sweep file::

    description = "Table 3"
    task = "ecg"                        # a paper task, "ucr:NAME", or use data = "PATH" (a data file)
    task_options = {split_seed = 1}     # user data only: normalize, val_fraction, split_seed, fold, folds
    models = ["nrnn", "lipschitz"]      # each starts from its shipped config for the task, if
                                        # there is one, else from the model's defaults
    seeds = 10                          # or a list, e.g. [0, 1, 5]
    model_seeds = {cornn = 1}           # optional: fewer (or other) seeds for some models
    batch_seeds = true                  # NRNN-family seeds train as one batched ensemble
    order = "run"                       # jobs run by run (default), or "seed": every run's first
                                        # seed before any run's second
    [grid]                              # optional cartesian product, applied to every model
    "params.add_noise" = [0.02, 0.06]
    [overrides.nrnn]                    # optional per-model settings ("*": every model)
    "train.epochs" = 80
    configs = "mnist"                   # optional: start from configs/mnist/ (default: the task's)

The results store (``OUT``) holds one folder per run, ``OUT/runs/RUN/seedK/`` (config,
metrics log, checkpoints, ``result.json`` or ``error.json``), and the index
``OUT/index.jsonl`` with one line per run. Every file is written atomically. Running the
same sweep again skips finished runs, resumes interrupted ones from their last epoch's
checkpoint and retries failed ones; a failing run is recorded and never stops the others.
"""

from __future__ import annotations

import copy
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..data import TASK_OPTIONS, is_user_task
from ..data.files import atomic_write_text
from ..errors import ConfigError
from .configs import CONFIG_ROOT, config_path, default_config, task_config
from .paper import COLUMNS, columns_for

SWEEP_ROOT = CONFIG_ROOT / "sweeps"
INDEX = "index.jsonl"
SWEEP_COPY = "sweep.json"


@dataclass
class RunSpec:
    """One configuration (model + settings) to train for several seeds."""

    name: str  # run folder name: the model name, plus grid values if any
    model: str
    config: dict  # {"model", "params", "train", "description"}
    seeds: list[int]
    batch_seeds: bool = True


@dataclass
class Sweep:
    task: str
    runs: list[RunSpec]
    columns: list[str]
    description: str = ""
    source: dict = field(default_factory=dict)
    task_options: dict = field(default_factory=dict)  # user data: normalize, val_fraction, split_seed, fold(s)
    order: str = "run"  # "run": a run's seeds together; "seed": seed-major (each run's first seed first)


def _apply(config: dict, settings: dict) -> dict:
    """A copy of ``config`` with the sweep ``settings`` ({"params.NAME" | "train.NAME": value})
    applied; switching ``params.noise`` drops the base's keys of the old noise setting
    (:func:`noisyrnn.models.noise_settings.rebase_params`)."""
    from ..models.noise_settings import rebase_params

    config = copy.deepcopy(config)
    params = {}
    for key, value in settings.items():
        section, _, name = key.partition(".")
        if section not in ("params", "train") or not name:
            raise ConfigError(f"sweep setting {key!r} must be 'params.NAME' or 'train.NAME'")
        (params if section == "params" else config["train"])[name] = value
    config["params"] = rebase_params(config["params"], params)
    return config


def _revalidate(config: dict) -> dict:
    from ..models.registry import resolve_params
    from ..training import TrainConfig

    config["params"] = resolve_params(config["model"], config["params"])
    config["train"] = TrainConfig.from_dict(config["train"]).to_dict()
    return config


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).replace("/", "_").replace(" ", "")


def base_config(configs: str, model: str, config_dir=None) -> dict:
    """The shipped recipe ``configs/CONFIGS/MODEL.toml`` for the paper's tasks (or from an
    explicit ``config_dir``), else (user data) the model's own defaults."""
    if config_dir is not None or configs in COLUMNS or config_path(configs, model).is_file():
        return task_config(configs, model, config_dir)
    return default_config(model)


def _seed_list(value, what: str) -> list[int]:
    """``N`` means seeds 0..N-1; a list names them."""
    if isinstance(value, bool) or not isinstance(value, (int, list)):
        raise ConfigError(f"{what} must be a number of seeds or a list of seeds, got {value!r}")
    seeds = list(range(value)) if isinstance(value, int) else [int(s) for s in value]
    if not seeds:
        raise ConfigError(f"{what}: no seeds")
    return seeds


SWEEP_KEYS = ("description", "task", "data", "task_options", "models", "seeds", "model_seeds", "batch_seeds",
              "grid", "overrides", "columns", "configs", "order")


def _sweep_task(raw: dict) -> str:
    """The sweep's task: a paper task, ``ucr:NAME``, or ``file:PATH`` from ``data = PATH``."""
    task = raw.get("task")
    if "data" in raw:
        if task is not None:
            raise ConfigError("a sweep names either task or data, not both")
        path = Path(raw["data"]).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"sweep data file does not exist: {raw['data']}")
        task = f"file:{path}"
    if not isinstance(task, str) or not (task in COLUMNS or is_user_task(task)):
        raise ConfigError(f"sweep task must be one of {', '.join(COLUMNS)}, ucr:NAME, or data = PATH; got {task!r}")
    return task


def _task_options(raw: dict, task: str) -> dict:
    """``task_options``, which apply to user data only, each one known."""
    task_options = dict(raw.get("task_options") or {})
    if task_options and task in COLUMNS:
        raise ConfigError(f"task_options apply to user data (ucr:NAME, data = PATH), not to the paper task {task!r}")
    known_options = [o for o in TASK_OPTIONS if o != "regression"]
    unknown_options = set(task_options) - set(known_options)
    if unknown_options:
        raise ConfigError(f"unknown task_options {', '.join(sorted(unknown_options))}; known: "
                          f"{', '.join(known_options)}")
    return task_options


def _grid_and_overrides(raw: dict, models: list[str]) -> tuple[dict, dict]:
    """``grid`` (non-empty lists) and ``overrides`` (tables naming models the sweep runs, or ``*``)."""
    grid = raw.get("grid", {})
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"grid entry {k!r} must be a non-empty list")
    overrides = raw.get("overrides", {})
    if not isinstance(overrides, dict) or any(not isinstance(v, dict) for v in overrides.values()):
        raise ConfigError("sweep overrides must be tables: [overrides.MODEL] with \"params.X\" / \"train.Y\" keys")
    stray = set(overrides) - set(raw.get("models") or []) - set(models) - {"*"}
    if stray:
        raise ConfigError(f"[overrides.{sorted(stray)[0]}] names a model the sweep does not run; it runs "
                          f"{', '.join(raw.get('models') or models)} (\"*\" applies to every model)")
    return grid, overrides


def _expand_runs(raw: dict, task: str, models: list[str], seeds, config_dir) -> list[RunSpec]:
    """One run per model and grid point: the model's base recipe, its overrides, the point's
    settings, and its seeds (``seeds`` given on the command line win over ``model_seeds``)."""
    seed_list = _seed_list(seeds if seeds is not None else raw.get("seeds", 1), "seeds")
    model_seeds = dict(raw.get("model_seeds") or {})
    stray = set(model_seeds) - set(raw.get("models") or []) - set(models)
    if stray:
        raise ConfigError(f"model_seeds names model(s) the sweep does not run: {', '.join(sorted(stray))}")
    grid, overrides = _grid_and_overrides(raw, models)
    runs = []
    for model in models:
        base = base_config(raw.get("configs", task), model, config_dir)
        over = {**overrides.get("*", {}), **overrides.get(model, {})}
        own = seed_list if seeds is not None or model not in model_seeds else _seed_list(
            model_seeds[model], f"model_seeds.{model}")
        for point in itertools.product(*grid.values()):
            cfg = _apply(base, {**over, **dict(zip(grid, point))})
            suffix = [f"{key.split('.', 1)[1]}={_label(value)}" for key, value in zip(grid, point)]
            name = "__".join([model] + suffix)
            runs.append(RunSpec(name, model, _revalidate(cfg), own, bool(raw.get("batch_seeds", True))))
    return runs


def parse_sweep(raw: dict, config_dir=None, seeds=None, models=None) -> Sweep:
    """Build a :class:`Sweep` from a parsed TOML dict (``seeds``/``models`` override it)."""
    unknown = set(raw) - set(SWEEP_KEYS)
    if unknown:
        raise ConfigError(f"unknown sweep key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(SWEEP_KEYS))}")
    task = _sweep_task(raw)
    task_options = _task_options(raw, task)
    models = list(models or raw.get("models") or [])
    if not models:
        raise ConfigError("sweep lists no models")
    runs = _expand_runs(raw, task, models, seeds, config_dir)
    columns = list(raw.get("columns") or columns_for(task))
    check_columns(columns)
    order = raw.get("order", "run")
    if order not in ("run", "seed"):
        raise ConfigError(f"sweep order must be 'run' or 'seed', got {order!r}")
    return Sweep(task, runs, columns, raw.get("description", ""), raw, task_options, order)


def check_columns(columns) -> None:
    """Every perturbation column parses (checked before the first run trains, not after the last)."""
    from ..perturbations import parse_column

    if not columns or any(not isinstance(c, str) for c in columns):
        raise ConfigError(f"sweep columns must be a non-empty list of column names, got {columns!r}")
    for column in columns:
        parse_column(column)


def load_sweep(path, config_dir=None, seeds=None, models=None) -> Sweep:
    """Read a sweep file; a bare name (``ecg_table3``) means a shipped sweep."""
    path = Path(path)
    if not path.is_file() and (SWEEP_ROOT / f"{path.name}.toml").is_file():
        path = SWEEP_ROOT / f"{path.name}.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        shipped = ", ".join(sorted(p.stem for p in SWEEP_ROOT.glob("*.toml")))
        raise ConfigError(f"sweep file not found: {path} (shipped sweeps: {shipped})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"sweep file {path} is not valid TOML: {err}") from None
    except IsADirectoryError:
        raise ConfigError(f"sweep file {path} is a folder") from None
    return parse_sweep(raw, config_dir=config_dir, seeds=seeds, models=models)


def run_folder(out: Path, run: str, seed: int) -> Path:
    return Path(out) / "runs" / run / f"seed{seed}"


def read_outcome(out: Path, run: str, seed: int) -> dict | None:
    """The run's recorded result, its recorded error, or None if it has neither."""
    folder = run_folder(out, run, seed)
    for name in ("result.json", "error.json"):
        p = folder / name
        if p.is_file():
            return json.loads(p.read_text())
    return None


def write_index(out: Path, sweep: Sweep) -> list[dict]:
    """Rewrite OUT/index.jsonl from the run folders; returns its rows."""
    rows = []
    for spec in sweep.runs:
        for seed in spec.seeds:
            rec = read_outcome(out, spec.name, seed)
            row = {"run": spec.name, "model": spec.model, "seed": seed, "task": sweep.task,
                   "status": "pending", "params": spec.config["params"], "train": spec.config["train"]}
            if rec is not None:
                row["status"] = rec.get("status", "done")
                row.update({k: rec[k] for k in ("accuracy", "error", "best_epoch", "seconds", "code") if k in rec})
            rows.append(row)
    atomic_write_text(Path(out) / INDEX, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def read_index(out: Path) -> list[dict]:
    p = Path(out) / INDEX
    if not p.is_file():
        raise ConfigError(f"no results index at {p}; run a sweep into {out} first")
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
