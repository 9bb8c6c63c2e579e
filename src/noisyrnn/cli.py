"""The ``noisyrnn`` command line: train, predict, evaluate, search, reproduce, sweep, analyze, theory-checks,
report, stream, export, settings."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import ConfigError, NoisyRNNError


def _tasks() -> str:
    """The built-in tasks' names, from their registry (:data:`noisyrnn.data.TASK_LOADERS`)."""
    from .data import TASK_LOADERS

    return ", ".join(TASK_LOADERS)


def _parse_assignments(items) -> dict:
    """``key=value`` strings to a dict, values parsed as JSON where possible (0.1, true, [90])."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with the dataset files (default: $NOISYRNN_DATA_DIR, then bundled data); "
                        "must exist")
    p.add_argument("--download", action="store_true", help="download the dataset if it is not found")


def _add_user_data_args(p: argparse.ArgumentParser, options: bool = True) -> None:
    p.add_argument("--task", default=None,
                   help=f"a built-in task ({_tasks()}; default ecg) or ucr:NAME (any UCR/UEA dataset)")
    p.add_argument("--data", type=Path, default=None,
                   help="a data file: .npz (X, y[, lengths, X_test, y_test, lengths_test]), CSV (label first) "
                        "or .ts; NAME_TRAIN.* takes NAME_TEST.* beside it as its test part")
    if options:
        p.add_argument("--no-normalize", action="store_true",
                       help="user data: do not z-score each channel with the training split's statistics")
        p.add_argument("--val-fraction", type=float, default=0.2,
                       help="user data: fraction of the training part held out (stratified) for validation; 0: "
                            "train on all of it and keep the last epoch (with --set train.select=last)")
        p.add_argument("--regression", action="store_true",
                       help="user data: y holds real-valued targets (n,) or (n, k), not class labels; reports RMSE "
                            "and MAE (a .ts file's @targetLabel true says so itself)")
    _add_data_args(p)


def _task_name(args, default="ecg") -> str:
    """The task the arguments name: ``file:PATH`` for --data, else --task (default ``default``)."""
    if args.data is not None and args.task is not None:
        raise ConfigError("give either --data PATH or --task NAME, not both")
    if args.data is not None:
        if not args.data.exists():
            raise ConfigError(f"data path does not exist: {args.data}")
        return f"file:{args.data}"
    return args.task or default


def _load_task(args, name: str):
    from .data import is_user_task, load_task

    user = is_user_task(name)
    regression = getattr(args, "regression", False)
    options = {"normalize": not args.no_normalize, "val_fraction": args.val_fraction} if user else {}
    if user and regression:
        options["regression"] = True
    if not user and (args.no_normalize or args.val_fraction != 0.2 or regression):
        raise ConfigError(f"--no-normalize, --val-fraction and --regression apply to user data (--data, ucr:NAME), "
                          f"not to the paper task {name!r}")
    return load_task(name, data_dir=args.data_dir, download=args.download, **options)


def resolve_settings(task: str, model: str | None, config_file=None, recipe: bool = False,
                     assignments=None, seed: int = 0, epochs: int | None = None,
                     select_under: str | None = None) -> tuple[str, dict, dict]:
    """(model, params, train) for ``noisyrnn train``: a config file, the shipped paper recipe
    (``recipe``), or the model's own defaults; then ``--set`` (``params.X=`` / ``train.Y=``; a
    key without its section is an error, so no setting lands in the wrong place)."""
    from .experiments.configs import default_config, load_config, task_config
    from .models.noise_settings import rebase_params
    from .models.registry import resolve_params
    from .training import TrainConfig

    if config_file is not None:
        cfg = load_config(config_file)
        if model is not None and model != cfg["model"]:
            raise ConfigError(f"--model {model} contradicts the config file's model {cfg['model']!r}")
    elif recipe:
        cfg = task_config(task, model or "nrnn")
    else:
        cfg = default_config(model or "nrnn")
    name = cfg["model"]
    train = dict(cfg["train"])
    param_updates = {}
    for key, value in _parse_assignments(assignments).items():
        section, _, bare = key.partition(".")
        if section not in ("params", "train") or not bare:
            where = ("a training option" if key in TrainConfig.__dataclass_fields__ else "a model parameter")
            raise ConfigError(f"--set {key}=... names no section: write params.{key}= (a model parameter) or "
                              f"train.{key}= (a training option); {key!r} looks like {where}")
        (param_updates if section == "params" else train)[bare] = value
    params = rebase_params(cfg["params"], param_updates)
    train["seed"] = seed
    if epochs is not None:
        train["epochs"] = epochs  # unset lr_milestones follow it (x lr_gamma at 90% of the epochs)
    if select_under is not None:
        train["select_under"] = select_under
    params = resolve_params(name, params)
    train = TrainConfig.from_dict(train).to_dict()
    return name, params, train


def cmd_train(args) -> int:
    from .evaluation import robustness
    from .experiments.paper import columns_for
    from .training import TrainConfig, train_model

    task_name = _task_name(args)
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; name a folder (new, or a run of the same settings to resume)")
    model, params, train = resolve_settings(task_name, args.model, args.config, args.recipe, args.set, args.seed,
                                            args.epochs, args.select_under)
    if args.n_members < 1:
        raise ConfigError(f"--n-members must be >= 1, got {args.n_members}")
    task = _load_task(args, task_name)
    print("noisyrnn: settings: " + json.dumps({"task": task_name, "model": model, "params": params,
                                                "train": train, "n_members": args.n_members}),
          file=sys.stderr, flush=True)
    result = train_model(model, params, task, TrainConfig.from_dict(train), out_dir=args.out,
                         resume=not args.overwrite, progress=not args.no_progress, n_members=args.n_members)
    split, which = (task.test, "test") if task.test is not None else (task.val, "validation")
    if task.regression:  # RMSE and MAE in the targets' units, clean and under input noise
        from .evaluation import regression_errors
        from .experiments.paper import USER_COLUMNS

        errors = regression_errors(result.model, split, USER_COLUMNS, seed=args.seed,
                                   target_normalization=task.target_normalization)
        best = result.history[result.best_epoch]["val_rmse"] if result.history else float("nan")
        summary = {"model": model, "task": task_name, "out": str(args.out), "best_epoch": result.best_epoch,
                   "best_val_rmse_zscored": best, "evaluated_on": which, which: errors,
                   "settings": {"params": params, "train": train}}
        if result.members:
            summary.update(n_members=len(result.members), best_epoch=[r.best_epoch for r in result.members])
        print(json.dumps(summary, indent=2))
        return 0
    acc = robustness(result.model, split, columns_for(task_name), seed=args.seed, value_range=task.data_range)
    summary = {"model": model, "task": task_name, "out": str(args.out), "best_epoch": result.best_epoch,
               "best_val_accuracy": result.best_val_accuracy, "evaluated_on": which, which: acc,
               "settings": {"params": params, "train": train}}
    if result.members:
        summary.update(n_members=len(result.members), best_epoch=[r.best_epoch for r in result.members],
                       best_val_accuracy_of_members=[r.best_val_accuracy for r in result.members])
    print(json.dumps(summary, indent=2))
    return 0


def cmd_predict(args) -> int:
    from .data import read_labelled_split
    from .predict import TrainedRun, predict_proba, write_predictions

    if args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a folder; name the CSV file to write")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    run = TrainedRun.load(args.run)
    split, true = read_labelled_split(args.data, None, run.normalization)
    if split.x.shape[-1] != run.model.input_size:
        raise ConfigError(f"{args.data}: sequences have {split.x.shape[-1]} channel(s), the model "
                          f"in {args.run} takes {run.model.input_size}")
    if run.regression:
        return _predict_targets(run, split, true, args)
    probs = predict_proba(run.model, split, args.batch_size)
    write_predictions(args.out, probs, run.classes, true)
    summary = {"run": str(args.run), "data": str(args.data), "sequences": len(split), "out": str(args.out)}
    if true is not None:  # labels compared by value, as training parsed them (2.0 is the class 2)
        index = {c: i for i, c in enumerate(run.classes)}
        pred = probs.argmax(-1).tolist()
        summary["accuracy"] = sum(index.get(t, -1) == p for p, t in zip(pred, true)) / max(len(true), 1)
        unseen = sum(t not in index for t in true)
        if unseen:
            summary["labels_not_seen_in_training"] = unseen
    print(json.dumps(summary, indent=2))
    return 0


def _predict_targets(run, split, true, args) -> int:
    """``predict`` for a regression run: CSV index, prediction (one column per target), in the
    targets' units; RMSE and MAE when the file has targets."""
    import numpy as np

    from .data.files import atomic_write_text
    from .predict import predict_targets

    values = predict_targets(run.model, split, run.target_normalization, args.batch_size)  # (n, k), y's units
    k = values.shape[1]
    names = ["prediction"] if k == 1 else [f"prediction_{j}" for j in range(k)]
    lines = [",".join(["index"] + names)] + [",".join([str(i)] + [repr(float(v)) for v in row])
                                             for i, row in enumerate(values.tolist())]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    summary = {"run": str(args.run), "data": str(args.data), "sequences": len(split), "out": str(args.out)}
    if true is not None:
        target = np.asarray(true, dtype=np.float64).reshape(len(values), -1)
        diff = values.numpy().astype(np.float64) - target
        summary.update(rmse=float(np.sqrt(np.mean(diff ** 2))), mae=float(np.mean(np.abs(diff))))
    print(json.dumps(summary, indent=2))
    return 0


def cmd_evaluate(args) -> int:
    if args.data is None:
        from .experiments.reproduce import evaluate_checkpoint

        acc = evaluate_checkpoint(args.checkpoint, args.task or "ecg", columns=args.columns, seed=args.seed,
                                  data_dir=args.data_dir)
        print(json.dumps({"checkpoint": str(args.checkpoint), "task": args.task or "ecg", "accuracy": acc},
                         indent=2))
        return 0
    if args.task is not None:
        raise ConfigError("give either --data PATH or --task NAME, not both")
    from .data import read_labelled_split
    from .experiments.paper import USER_COLUMNS
    from .experiments.robustness_report import scale_note, write_robustness_report
    from .evaluation import robustness
    from .predict import TrainedRun

    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; name a folder for the report")
    run = TrainedRun.load(args.checkpoint)
    split, labels = read_labelled_split(args.data, run.classes, run.normalization)
    if labels is None:
        raise ConfigError(f"{args.data} has no labels (y); evaluate needs them (predict does not)")
    columns = args.columns or USER_COLUMNS
    acc = robustness(run.model, split, columns, seed=args.seed, value_range=run.value_range)
    out = args.out or args.checkpoint / "evaluation"
    meta = {"model": run.model.config.get("name"), "run": str(args.checkpoint), "data": str(args.data),
            "sequences": len(split), "seed": args.seed, "scale": scale_note(run.normalization)}
    write_robustness_report(out, acc, meta)
    print(json.dumps({"checkpoint": str(args.checkpoint), "data": str(args.data), "accuracy": acc,
                      "report": str(out / "report.md")}, indent=2))
    return 0


def cmd_search(args) -> int:
    from .experiments.executors import make_executor
    from .experiments.search import parse_grid, search

    task_name = _task_name(args)
    if args.data is not None:
        task_name = f"file:{args.data.resolve()}"
    overrides = {}
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    result = search(task_name, args.model, args.out, grid=parse_grid(args.grid), select_under=args.select_under,
                    seeds=args.seeds, overrides=overrides, splits=args.splits, folds=args.folds,
                    candidates=args.candidates, refit=args.refit,
                    executor=make_executor(args.executor, args.workers, args.address, args.threads, args.keep_freed_memory), data_dir=args.data_dir,
                    download=args.download, progress=not args.no_progress, wait=args.wait)
    print(json.dumps({"best": result["best"], "written": str(args.out / "best.json"),
                      **({"refit": result["refit"]} if "refit" in result else {})}, indent=2))
    return 0


def cmd_reproduce(args) -> int:
    from .experiments.report import markdown_table
    from .experiments.reproduce import reproduce

    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    out = args.out or Path("results") / (args.task if args.protocol in (None, "full") else f"{args.task}_{args.protocol}")
    args.out = out
    results = reproduce(args.task, args.models, args.seeds, out, data_dir=args.data_dir,
                        config_dir=args.config_dir, progress=not args.no_progress, download=args.download,
                        batch_seeds=not args.no_batch_seeds, executor=args.executor, workers=args.workers, threads=args.threads,
                        address=args.address, protocol=args.protocol, keep_freed_memory=args.keep_freed_memory,
                        wait=args.wait)
    print(markdown_table(results))
    print(f"\nwrote {args.out / 'report.md'}, {args.out / 'figure.png'}, {args.out / 'results.json'} "
          f"in {results['meta']['wall_seconds']:.0f} s")
    return 0


def cmd_sweep(args) -> int:
    from .experiments.executors import make_executor
    from .experiments.report import markdown_table, report_store
    from .experiments.runner import run_sweep
    from .experiments.sweep import load_sweep

    sweep = load_sweep(args.config, config_dir=args.config_dir)
    run_sweep(sweep, args.out, make_executor(args.executor, args.workers, args.address, args.threads, args.keep_freed_memory), data_dir=args.data_dir,
              download=args.download, progress=not args.no_progress, wait=args.wait)
    results = report_store(args.out)
    print(markdown_table(results))
    return 1 if results["failed"] else 0


def cmd_report(args) -> int:
    from .experiments.report import markdown_table, report_store

    if (args.results / "summary.json").is_file() and not (args.results / "sweep.json").is_file():
        from .experiments.analysis import markdown_summary, rebuild_analysis_report

        summary = rebuild_analysis_report(args.results)  # an analysis folder (noisyrnn analyze --out)
        print(markdown_summary(summary["models"]))
        print(f"\nwrote {args.results / 'report.md'}, {args.results / 'summary.json'}")
        return 0
    results = report_store(args.results, curves=args.curves)
    print(markdown_table(results))
    print(f"\nwrote {args.results / 'report.md'}, {args.results / 'results.json'}"
          + (f", {args.results / 'figure.png'}" if results["models"] else "")
          + (f", {args.results / 'curves.png'}" if results["meta"].get("curves") else ""))
    return 0


def cmd_analyze(args) -> int:
    from .data import load_task
    from .experiments.analysis import AnalysisConfig, markdown_summary, run_analysis

    cfg = AnalysisConfig(samples=args.samples, probes=args.probes, hessian_samples=args.hessian_samples,
                         lanczos_steps=args.lanczos_steps, top_k=args.top_k, trace_probes=args.trace_probes,
                         margin=not args.no_margin, hessian=not args.no_hessian, seed=args.seed)
    cfg.validate()
    for folder in args.checkpoints:
        if not (folder / "model.json").is_file():
            raise ConfigError(f"{folder} is not a checkpoint folder (no model.json)")
        if "members" in json.loads((folder / "model.json").read_text()).get("model", {}):
            raise ConfigError(f"{folder} is a seed ensemble (--n-members); the analysis takes one model at a time: "
                              f"name its members, {folder / 'members'}/0 ...")
    # user data: the same file gives the training run's split and normalisation (split seed 0)
    task = load_task(_task_name(args), data_dir=args.data_dir, download=args.download)
    summary = run_analysis(args.checkpoints, task, args.out, cfg, progress=not args.no_progress,
                           restart=args.restart)
    print(markdown_summary(summary["models"]))
    print(f"\nwrote {args.out / 'report.md'}, {args.out / 'summary.json'}, per-checkpoint "
          f"{args.out / 'runs'}/*/*/analysis.json in {summary['seconds']:.0f} s "
          f"(the analyses themselves: {summary['compute_seconds']:.0f} s, including any reused from --out)")
    return 0


def cmd_stream(args) -> int:
    from .streaming import stream_predictions

    return stream_predictions(args.run, sys.stdin, sys.stdout, every=args.every)


def cmd_export(args) -> int:
    from .export import export_run
    from .predict import TrainedRun

    if args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a folder; name the file to write (e.g. model.{args.format})")
    run = TrainedRun.load(args.run)
    meta = export_run(run, args.format, args.out, opset=args.opset)
    print(json.dumps({"run": str(args.run), "format": args.format, "out": str(args.out),
                      "classes": meta["classes"], "inputs": list(meta["inputs"]),
                      "outputs": list(meta["outputs"])}, indent=2))
    return 0


def settings_text(model: str | None = None) -> str:
    """The settings ``--set``, TOML files and sweeps take, from their declarations
    (:mod:`noisyrnn.parameters`): a model's parameters with its defaults, then the training
    options with the library's (and the model's own) defaults."""
    from .experiments.configs import default_config
    from .models.registry import COMMON_PARAMS, DEFAULTS, MODEL_NAMES
    from .parameters import MODEL_PARAMS, TRAIN_PARAMS, describe_settings

    lines = []
    if model is None:
        lines.append("models: " + ", ".join(MODEL_NAMES) + " (noisyrnn settings --model NAME: its parameters)")
        lines.append("model parameters (which ones a model takes, and their defaults, depend on the model):")
        lines += ["  " + line for line in describe_settings(MODEL_PARAMS, "params.")]
        train_defaults = None
    else:
        cfg = default_config(model)
        own = {k: v for k, v in MODEL_PARAMS.items()
               if k in cfg["params"] or k in DEFAULTS.get(model, {}) or k in COMMON_PARAMS}
        lines.append(f"model parameters of {model!r}:")
        lines += ["  " + line for line in describe_settings(own, "params.", cfg["params"])]
        train_defaults = {k: v for k, v in cfg["train"].items() if k != "lr_milestones"}
    lines.append("training options:")
    lines += ["  " + line for line in describe_settings(TRAIN_PARAMS, "train.", train_defaults)]
    return "\n".join(lines)


def cmd_settings(args) -> int:
    print(settings_text(args.model))
    return 0


def cmd_theory_checks(args) -> int:
    from .experiments.theory_checks import run_theory_checks

    results = run_theory_checks(args.out, paths=args.paths, seed=args.seed)
    print(json.dumps(results["headline"], indent=2))
    return 0


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local processes (default) or a Ray cluster")
    p.add_argument("--workers", type=int, default=1,
                   help="parallel workers; each gets cores/workers torch threads")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per worker (default cores/workers; lower it when the machine is shared)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--wait", action="store_true",
                   help="if another process owns the results store, wait for it to finish instead of failing")


class _NoAbbrevParser(argparse.ArgumentParser):
    """Sub-command parsers that take no abbreviations: ``--data`` is never ``--data-dir``."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def _train_command(sub) -> None:
    from .parameters import TRAIN_PARAMS, describe_settings

    p = sub.add_parser("train", help="train one model on a task or your data and report its robustness",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="training options for --set train.NAME=VALUE (model parameters: noisyrnn settings "
                              "--model NAME):\n" + "\n".join("  " + line for line in
                                                             describe_settings(TRAIN_PARAMS, "train.")))
    p.add_argument("--model", default=None, help="model name (default nrnn); its own defaults are used")
    p.add_argument("--config", type=Path, default=None, help="a TOML config file (model, [params], [train])")
    p.add_argument("--recipe", action="store_true",
                   help="start from the paper's shipped recipe for --task (configs/TASK/MODEL.toml)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                   help="override settings: params.NAME=V or train.NAME=V (a bare NAME must be unambiguous)")
    p.add_argument("--select-under", default=None, metavar="COLUMN",
                   help="select the epoch on validation accuracy under this perturbation, e.g. white_0.4")
    p.add_argument("--n-members", type=int, default=1, metavar="N",
                   help="a seed ensemble of N models trained seed-batched in one pass, their probabilities averaged "
                        "(members under OUT/members/)")
    p.add_argument("--out", type=Path, required=True, help="output folder (checkpoints, metrics log)")
    p.add_argument("--overwrite", "--restart", dest="overwrite", action="store_true",
                   help="replace a run already in --out instead of resuming it (a run is resumed only when its "
                        "settings and training data match this one's)")
    p.add_argument("--no-progress", action="store_true")
    _add_user_data_args(p)
    p.set_defaults(func=cmd_train)


def _predict_command(sub) -> None:
    p = sub.add_parser("predict", help="predicted labels and class probabilities for new sequences (CSV)")
    p.add_argument("run", type=Path, help="a trained run's folder (model.safetensors + model.json)")
    p.add_argument("--data", type=Path, required=True, help="a data file (.npz, CSV or .ts; labels optional in .npz)")
    p.add_argument("--out", type=Path, required=True, help="CSV to write: index, predicted, [label,] prob_CLASS...")
    p.add_argument("--batch-size", type=int, default=1000)
    p.set_defaults(func=cmd_predict)


def _evaluate_command(sub) -> None:
    p = sub.add_parser("evaluate", help="robustness of a saved model: a paper task's test split (JSON) or your "
                                        "data (--data: report.md, robustness.png, robustness.json)")
    p.add_argument("checkpoint", type=Path, help="folder holding model.safetensors and model.json")
    p.add_argument("--task", default=None, help=f"a built-in task ({_tasks()}; default ecg)")
    p.add_argument("--data", type=Path, default=None, help="a labelled data file (its test part if it has one)")
    p.add_argument("--columns", nargs="+", default=None, help="e.g. clean white_0.4 mult_1.2")
    p.add_argument("--seed", type=int, default=0, help="seed of the perturbation draws")
    p.add_argument("--out", type=Path, default=None, help="report folder for --data (default: CHECKPOINT/evaluation)")
    _add_data_args(p)
    p.set_defaults(func=cmd_evaluate)


def _search_command(sub) -> None:
    p = sub.add_parser("search", help="validation search over noise level, step and learning rate (a sweep)")
    p.add_argument("--model", default="nrnn")
    p.add_argument("--out", type=Path, required=True, help="results store of the search (resumable)")
    p.add_argument("--grid", nargs="*", metavar="KEY=V1,V2", help="the grid (default: the model's search space)")
    p.add_argument("--select-under", default=None, metavar="COLUMN",
                   help="choose on validation accuracy under this perturbation (e.g. white_0.4) instead of clean")
    p.add_argument("--seeds", type=int, default=1, help="seeds per candidate")
    p.add_argument("--splits", type=int, default=1,
                   help="user data: average each candidate over this many stratified hold-out validation splits")
    p.add_argument("--folds", type=int, default=None,
                   help="user data: stratified K-fold selection (default: 5 folds where validation holds fewer "
                        "than 50 sequences, else the one split; 1: never)")
    p.add_argument("--candidates", type=int, default=None,
                   help="random search: a seeded subset of this many grid points (default: the whole --grid, or 16 "
                        "points of the model's own search space)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--refit", action="store_true",
                   help="then train the winner on every labelled sequence (training + validation, last epoch kept) "
                        "into OUT/refit, as scikit-learn's refit (user data)")
    p.add_argument("--no-progress", action="store_true")
    _add_user_data_args(p, options=False)
    _add_executor_args(p)
    p.set_defaults(func=cmd_search)


def _reproduce_command(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce a paper table (report.md, figure.png, results.json)")
    from .experiments.reproduce import TABLE_SWEEPS

    p.add_argument("task", choices=tuple(TABLE_SWEEPS))
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the table's sweep, 10 for ECG)")
    p.add_argument("--models", nargs="+", default=None, help="default: every row of the table")
    p.add_argument("--protocol", choices=("cpu", "rows", "full"), default=None,
                   help="MNIST/pMNIST: 'cpu' (the pixel task T=784 with fewer epochs and seeds, about 2.5 h on 2 "
                        "cores with --workers 2; default), 'rows' (a T=28 row-by-row proxy, ~15 min) or 'full' (the "
                        "paper's recipe, for a GPU)")
    p.add_argument("--out", type=Path, default=None, help="results store (default: results/TASK[_PROTOCOL])")
    p.add_argument("--config-dir", type=Path, default=None, help="folder of MODEL.toml configs")
    p.add_argument("--no-batch-seeds", action="store_true",
                   help="train seeds one after another instead of as one seed-batched ensemble")
    p.add_argument("--no-progress", action="store_true")
    _add_data_args(p)
    _add_executor_args(p)
    p.set_defaults(func=cmd_reproduce)


def _sweep_command(sub) -> None:
    p = sub.add_parser("sweep", help="run a sweep file into a resumable results store")
    p.add_argument("config", type=Path, help="sweep TOML file, or the name of a shipped sweep (ecg_table3)")
    p.add_argument("--out", type=Path, required=True, help="results store folder")
    p.add_argument("--config-dir", type=Path, default=None, help="folder of MODEL.toml base configs")
    p.add_argument("--no-progress", action="store_true")
    _add_data_args(p)
    _add_executor_args(p)
    p.set_defaults(func=cmd_sweep)


def _analyze_command(sub) -> None:
    p = sub.add_parser("analyze", help="theory diagnostics of checkpoints: Thm 2 margins, Jacobian products, "
                                       "Hessian spectrum, Thm 3 bounds (JSON, report.md, PNG)")
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders (model.safetensors + model.json)")
    p.add_argument("--task", default=None, help=f"{_tasks()} (default ecg) or ucr:NAME")
    p.add_argument("--data", type=Path, default=None, help="the data file the checkpoints were trained on")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--samples", type=int, default=30, help="test sequences for the margin study")
    p.add_argument("--probes", type=int, default=5, help="points on the segment x_i -> flip point for the sup in eq (16)")
    p.add_argument("--hessian-samples", type=int, default=0, help="training sequences for the Hessian (0: all)")
    p.add_argument("--lanczos-steps", type=int, default=15)
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--trace-probes", type=int, default=20, help="Hutchinson probes for the Hessian trace")
    p.add_argument("--no-margin", action="store_true")
    p.add_argument("--no-hessian", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restart", action="store_true", help="recompute checkpoints already analysed in --out")
    p.add_argument("--no-progress", action="store_true")
    _add_data_args(p)
    p.set_defaults(func=cmd_analyze)


def _theory_checks_command(sub) -> None:
    p = sub.add_parser("theory-checks", help="Theorem 1 slope-2 check and Theorem 3 bounds vs measured exponents "
                                             "on small systems (JSON + PNG)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--paths", type=int, default=100_000, help="Monte Carlo paths per noise level")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_theory_checks)


def _report_command(sub) -> None:
    p = sub.add_parser("report", help="aggregate a results store into report.md, figure.png, results.json")
    p.add_argument("results", type=Path, help="results store folder (holding index.jsonl)")
    p.add_argument("--curves", action="store_true",
                   help="also plot the finished runs' validation accuracy per epoch (curves.png)")
    p.set_defaults(func=cmd_report)


def _stream_command(sub) -> None:
    p = sub.add_parser("stream", help="a live stream: one sample per line on stdin (CSV, one value per channel; a "
                                      "blank line starts a new sequence), the running prediction per line on stdout")
    p.add_argument("run", type=Path, help="a trained run's folder (model.safetensors + model.json)")
    p.add_argument("--every", type=int, default=1, help="print every N-th sample's prediction (default 1)")
    p.set_defaults(func=cmd_stream)


def _export_command(sub) -> None:
    from .export import DEFAULT_OPSET, FORMATS

    p = sub.add_parser("export", help="the inference path (noise off; normalisation and labels inside) as ONNX or "
                                      "TorchScript, to run where noisyrnn is not installed")
    p.add_argument("run", type=Path, help="a trained run's folder (model.safetensors + model.json)")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", type=Path, required=True, help="the file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.set_defaults(func=cmd_export)


def _settings_command(sub) -> None:
    p = sub.add_parser("settings", help="every model parameter and training option: type, range, default, help "
                                        "(from their declarations)")
    p.add_argument("--model", default=None, help="show this model's parameters and defaults (default: all models)")
    p.set_defaults(func=cmd_settings)


COMMANDS = (_train_command, _predict_command, _evaluate_command, _search_command, _reproduce_command,
            _sweep_command, _analyze_command, _theory_checks_command, _report_command, _stream_command,
            _export_command, _settings_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noisyrnn", description=__doc__, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"noisyrnn {__version__}")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="tune glibc's allocator for this process (noisyrnn.runtime.keep_freed_memory: keep "
                             "freed blocks instead of unmapping them; faster long CPU runs); off unless given")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_NoAbbrevParser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.keep_freed_memory:  # allocator tuning only when asked for
        from .runtime import keep_freed_memory

        keep_freed_memory()
    try:
        return args.func(args)
    except NoisyRNNError as err:
        print(f"noisyrnn: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("noisyrnn: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
