"""The ``noisyrnn`` command line: train, evaluate, reproduce, sweep, report, analyze, theory-checks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import ConfigError, NoisyRNNError

TASKS = ("ecg", "mnist", "pmnist", "mnist_rows", "pmnist_rows")
TABLE_TASKS = ("ecg", "mnist", "pmnist")


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
                   help="folder with the dataset files (default: $NOISYRNN_DATA_DIR, then bundled data)")
    p.add_argument("--download", action="store_true", help="download the dataset if it is not found")


def cmd_train(args) -> int:
    from .data import load_task
    from .evaluation import robustness
    from .experiments.configs import load_config, task_config
    from .experiments.paper import COLUMNS
    from .models.registry import resolve_params
    from .training import TrainConfig, train_model

    cfg = load_config(args.config) if args.config else task_config(args.task, args.model)
    model = cfg["model"] if args.config else args.model
    overrides = _parse_assignments(args.set)
    train_keys = set(TrainConfig.__dataclass_fields__)
    params = resolve_params(model, {**cfg["params"], **{k: v for k, v in overrides.items() if k not in train_keys}})
    train = {**cfg["train"], **{k: v for k, v in overrides.items() if k in train_keys}, "seed": args.seed}
    if args.epochs is not None:
        train["epochs"] = args.epochs
    train_cfg = TrainConfig.from_dict(train)
    task = load_task(args.task, data_dir=args.data_dir, download=args.download)
    result = train_model(model, params, task, train_cfg, out_dir=args.out, resume=not args.restart,
                         progress=not args.no_progress)
    acc = robustness(result.model, task.test, COLUMNS[args.task], seed=args.seed, value_range=task.data_range)
    summary = {"model": model, "out": str(args.out), "best_epoch": result.best_epoch,
               "best_val_accuracy": result.best_val_accuracy, "test": acc}
    print(json.dumps(summary, indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from .experiments.reproduce import evaluate_checkpoint

    acc = evaluate_checkpoint(args.checkpoint, args.task, columns=args.columns, seed=args.seed,
                              data_dir=args.data_dir)
    print(json.dumps({"checkpoint": str(args.checkpoint), "task": args.task, "accuracy": acc}, indent=2))
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
                        batch_seeds=not args.no_batch_seeds, executor=args.executor, workers=args.workers,
                        address=args.address, protocol=args.protocol)
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
    run_sweep(sweep, args.out, make_executor(args.executor, args.workers, args.address), data_dir=args.data_dir,
              download=args.download, progress=not args.no_progress)
    results = report_store(args.out)
    print(markdown_table(results))
    return 1 if results["failed"] else 0


def cmd_report(args) -> int:
    from .experiments.report import markdown_table, report_store

    results = report_store(args.results)
    print(markdown_table(results))
    print(f"\nwrote {args.results / 'report.md'}, {args.results / 'results.json'}"
          + (f", {args.results / 'figure.png'}" if results["models"] else ""))
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
    task = load_task(args.task, data_dir=args.data_dir, download=args.download)
    summary = run_analysis(args.checkpoints, task, args.out, cfg, progress=not args.no_progress,
                           restart=args.restart)
    print(markdown_summary(summary["models"]))
    print(f"\nwrote {args.out / 'report.md'}, {args.out / 'summary.json'}, per-checkpoint "
          f"{args.out / 'runs'}/*/*/analysis.json in {summary['seconds']:.0f} s "
          f"(the analyses themselves: {summary['compute_seconds']:.0f} s, including any reused from --out)")
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
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray instance)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noisyrnn", description=__doc__)
    parser.add_argument("--version", action="version", version=f"noisyrnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one model on a task and report its test robustness")
    p.add_argument("--task", choices=TASKS, default="ecg")
    p.add_argument("--model", default="nrnn", help="model name (its shipped config is used)")
    p.add_argument("--config", type=Path, default=None, help="a TOML config file instead of the shipped one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override model or training options")
    p.add_argument("--out", type=Path, required=True, help="output folder (checkpoints, metrics log)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")
    _add_data_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="robustness of a saved model on a task's test split")
    p.add_argument("checkpoint", type=Path, help="folder holding model.safetensors and model.json")
    p.add_argument("--task", choices=TASKS, default="ecg")
    p.add_argument("--columns", nargs="+", default=None, help="e.g. clean white_0.4 mult_1.2")
    p.add_argument("--seed", type=int, default=0, help="seed of the perturbation draws")
    _add_data_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("reproduce", help="reproduce a paper table (report.md, figure.png, results.json)")
    p.add_argument("task", choices=TABLE_TASKS)
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the table's sweep, 10 for ECG)")
    p.add_argument("--models", nargs="+", default=None, help="default: every row of the table")
    p.add_argument("--protocol", choices=("cpu", "full"), default=None,
                   help="MNIST: 'cpu' (reduced, ~15 min on 2 cores; default) or 'full' (the paper's recipe, for a GPU)")
    p.add_argument("--out", type=Path, default=None, help="results store (default: results/TASK[_PROTOCOL])")
    p.add_argument("--config-dir", type=Path, default=None, help="folder of MODEL.toml configs")
    p.add_argument("--no-batch-seeds", action="store_true",
                   help="train seeds one after another instead of as one seed-batched ensemble")
    p.add_argument("--no-progress", action="store_true")
    _add_data_args(p)
    _add_executor_args(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("sweep", help="run a sweep file into a resumable results store")
    p.add_argument("config", type=Path, help="sweep TOML file, or the name of a shipped sweep (ecg_table3)")
    p.add_argument("--out", type=Path, required=True, help="results store folder")
    p.add_argument("--config-dir", type=Path, default=None, help="folder of MODEL.toml base configs")
    p.add_argument("--no-progress", action="store_true")
    _add_data_args(p)
    _add_executor_args(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("analyze", help="theory diagnostics of checkpoints: Thm 2 margins, Jacobian products, "
                                       "Hessian spectrum, Thm 3 bounds (JSON, report.md, PNG)")
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders (model.safetensors + model.json)")
    p.add_argument("--task", choices=TASKS, default="ecg")
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

    p = sub.add_parser("theory-checks", help="Theorem 1 slope-2 check and Theorem 3 bounds vs measured exponents "
                                             "on small systems (JSON + PNG)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--paths", type=int, default=100_000, help="Monte Carlo paths per noise level")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_theory_checks)

    p = sub.add_parser("report", help="aggregate a results store into report.md, figure.png, results.json")
    p.add_argument("results", type=Path, help="results store folder (holding index.jsonl)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
