"""Does hidden-state noise make every cell more robust? ECG5000, Table 3 layout, each cell with
and without noise injection.

    python benchmarks/bench_noise_every_cell.py --out docs/results/noise_every_cell --workers 2

For each cell (``antisymmetric``, ``cornn``, ``exprnn``, ``lipschitz``; the paper's NRNN is the
Lipschitz cell with noise):

1. without noise: the cell's shipped ECG recipe (``configs/ecg/CELL.toml``), ``--seeds`` seeds;
2. the noise level, chosen on the validation split only: ``noisyrnn.experiments.search`` over
   the research-code scheme's additive level ``--levels`` (multiplicative level fixed at the
   paper's ECG 0.03), ``--search-seeds`` seeds each, the recipe otherwise unchanged, picked by
   validation accuracy (clean, or under ``--select-under``);
3. with noise: the chosen level, ``--seeds`` seeds.

Test accuracy under the Table 3 perturbations for both, in ``OUT/report.md`` (with the chosen
levels and every candidate's validation score), ``OUT/results.json`` and ``OUT/figure.png``
(Figure 2 style: accuracy vs strength, one panel per perturbation kind, +-1 std bands, each
cell without noise dashed and with noise solid). Every store under ``OUT/stores`` resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from noisyrnn.data.files import atomic_write_text
from noisyrnn.experiments.executors import make_executor
from noisyrnn.experiments.paper import COLUMNS, DISPLAY_NAMES
from noisyrnn.experiments.figures import save_png
from noisyrnn.experiments.report import _header, results_from_index
from noisyrnn.experiments.runner import run_sweep
from noisyrnn.experiments.search import search
from noisyrnn.experiments.sweep import parse_sweep, read_index
from noisyrnn.provenance import code_version, describe

CELLS = ("antisymmetric", "cornn", "exprnn", "lipschitz")
MULT = 0.03  # the paper's ECG multiplicative level


def run_cell(cell: str, noise: dict | None, seeds: int, store: Path, executor, overrides: dict, log) -> dict:
    over = dict(overrides)
    if noise:
        over.update({f"params.{k}": v for k, v in noise.items()})
    sweep = parse_sweep({"task": "ecg", "models": [cell], "seeds": seeds, "overrides": {cell: over},
                         "description": f"{cell} {'with' if noise else 'without'} noise"})
    run_sweep(sweep, store, executor, progress=False, log=log)
    return results_from_index(read_index(store), COLUMNS["ecg"], "ecg")["models"][cell]


def write_figure(out: Path, rows: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = {"white": [0.0, 0.4, 0.8, 1.2], "mult": [0.0, 0.4, 0.8, 1.2]}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (kind, levels) in zip(axes, kinds.items()):
        for i, (cell, rec) in enumerate(rows.items()):
            for variant, style in (("without", "--"), ("with", "-")):
                cols = ["clean"] + [f"{kind}_{lv:g}" for lv in levels[1:]]
                mean = [100 * rec[variant][c]["mean"] for c in cols]
                std = [100 * rec[variant][c]["std"] for c in cols]
                ax.plot(levels, mean, style, color=f"C{i}", marker="o",
                        label=f"{DISPLAY_NAMES.get(cell, cell)} {variant} noise")
                ax.fill_between(levels, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                                color=f"C{i}", alpha=0.12)
        ax.set(xlabel={"white": "additive white noise σ", "mult": "multiplicative white noise σ_M"}[kind],
               ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("ECG5000: each cell with and without hidden-state noise (±1 std over seeds)")
    save_png(fig, out / "figure.png")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cells", nargs="+", default=list(CELLS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--levels", type=float, nargs="+", default=[0.02, 0.06, 0.2, 0.5], help="additive levels searched")
    ap.add_argument("--search-seeds", type=int, default=3)
    ap.add_argument("--select-under", default=None, help="validation column to choose by (default: clean)")
    ap.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs (smoke runs)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    executor = make_executor("local", args.workers, threads=args.threads)
    overrides = {} if args.epochs is None else {"train.epochs": args.epochs, "train.lr_milestones": []}
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    rows, t0 = {}, time.perf_counter()
    for cell in args.cells:
        stores = args.out / "stores" / cell
        t1 = time.perf_counter()
        without = run_cell(cell, None, args.seeds, stores / "without", executor, overrides, log)
        found = search("ecg", cell, stores / "search", grid={"params.add_noise": args.levels},
                       select_under=args.select_under, seeds=args.search_seeds,
                       overrides={**overrides, "params.noise": "research", "params.mult_noise": MULT},
                       executor=executor, log=log)
        level = found["best"]["config"]["params"]["add_noise"]
        noise = {"noise": "research", "mult_noise": MULT, "add_noise": level}
        with_noise = run_cell(cell, noise, args.seeds, stores / "with", executor, overrides, log)
        rows[cell] = {"without": without, "with": with_noise, "chosen": noise,
                      "candidates": [{"add_noise": c["config"]["params"].get("add_noise"), "status": c["status"],
                                      "validation": c.get("score")} for c in found["candidates"]],
                      "seconds": time.perf_counter() - t1}
    result = {"task": "ecg", "columns": COLUMNS["ecg"], "cells": rows, "seeds": args.seeds,
              "levels": args.levels, "search_seeds": args.search_seeds, "select_under": args.select_under,
              "epochs_override": args.epochs, "seconds": time.perf_counter() - t0, "code": code_version()}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.json", json.dumps(result, indent=2))
    cols = COLUMNS["ecg"]
    lines = ["# Each cell with and without hidden-state noise (ECG5000)", "",
             f"Test accuracy in % (mean ± std over {args.seeds} seeds), noise injection off at test time. "
             f"'with noise': the research-code scheme, mult {MULT}, additive level chosen among "
             f"{args.levels} by validation accuracy ({args.select_under or 'clean'}; {args.search_seeds} seeds "
             f"per candidate); each cell's shipped ECG recipe otherwise"
             + (f", {args.epochs} epochs (a smoke run)" if args.epochs else "") + f". {describe(result['code'])}, "
             f"{result['seconds']:.0f} s.", "",
             "| cell | noise | " + " | ".join(_header(c) for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for cell, rec in rows.items():
        for variant in ("without", "with"):
            label = "none" if variant == "without" else f"add {rec['chosen']['add_noise']:g}"
            cells = [f"{100 * rec[variant][c]['mean']:.1f} ± {100 * rec[variant][c]['std']:.1f}" for c in cols]
            lines.append(f"| {DISPLAY_NAMES.get(cell, cell)} | {label} | " + " | ".join(cells) + " |")
        diff = [100 * (rec["with"][c]["mean"] - rec["without"][c]["mean"]) for c in cols]
        lines.append("| | with - without | " + " | ".join(f"{d:+.1f}" for d in diff) + " |")
    lines += ["", "Validation scores of the candidates:", ""]
    for cell, rec in rows.items():
        lines.append(f"* {cell}: " + ", ".join(
            f"add {c['add_noise']:g}: " + (f"{100 * c['validation']:.1f}" if c["validation"] is not None else c["status"])
            for c in rec["candidates"]))
    lines += ["", "![with and without noise](figure.png)"]
    atomic_write_text(args.out / "report.md", "\n".join(lines) + "\n")
    write_figure(args.out, rows)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
