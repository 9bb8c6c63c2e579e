"""Aggregate per-seed accuracies and write results.json, report.md (paper table layout,
the paper's numbers beside ours) and figure.png (accuracy vs perturbation strength)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..data.files import atomic_write_text
from ..provenance import describe
from .figures import save_png, subplots
from .paper import DISPLAY_NAMES, REFERENCE_TASK, paper_value


def summarise(values) -> dict:
    """mean, sample standard deviation (ddof=1; 0 for one value) and count."""
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(arr.size)}


def aggregate(task: str, records: dict, columns) -> dict:
    """{'task', 'columns', 'models': {name: {column: {mean, std, n}}}} from per-seed records."""
    models = {
        name: {c: summarise([r["accuracy"][c] for r in recs]) for c in columns}
        for name, recs in records.items() if recs
    }
    return {"task": task, "columns": list(columns), "models": models}


def _header(column: str) -> str:
    if column == "clean":
        return "clean"
    kind, level = column.split("_")
    return {"white": "σ", "mult": "σ_M", "sp": "α", "fgsm": "r"}.get(kind, kind) + f" = {level}"


def markdown_table(results: dict) -> str:
    task, columns = results["task"], results["columns"]
    lines = ["| model | | " + " | ".join(_header(c) for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for name, cols in results["models"].items():
        label = DISPLAY_NAMES.get(name, name)
        ours = [f"{100 * cols[c]['mean']:.1f} ± {100 * cols[c]['std']:.1f}" for c in columns]
        lines.append(f"| {label} (`{name}`) | ours | " + " | ".join(ours) + " |")
        reference = REFERENCE_TASK.get(task)
        paper = [paper_value(reference or task, name, c) for c in columns]
        if any(p is not None for p in paper):
            label = f"paper ({reference}, another task)" if reference else "paper"
            lines.append(f"| | {label} | " + " | ".join("—" if p is None else f"{p:.1f}" for p in paper) + " |")
            if reference is None:  # a gap only against the same task
                gaps = ["—" if p is None else f"{100 * cols[c]['mean'] - p:+.1f}" for c, p in zip(columns, paper)]
                lines.append("| | gap | " + " | ".join(gaps) + " |")
    return "\n".join(lines)


def write_report(out: Path, results: dict) -> None:
    n = {cols["clean"]["n"] for cols in results["models"].values()}
    meta = results.get("meta", {})
    text = [
        f"# Robustness on `{results['task']}`",
        "",
        f"Test accuracy in % (mean ± sample std over {', '.join(map(str, sorted(n)))} seeds), inputs "
        "perturbed at evaluation with noise injection off; 'paper' is the published table"
        + (f". This task is a proxy: the paper's rows are those of `{REFERENCE_TASK[results['task']]}`, "
           "another task, shown for orientation with no gap." if results["task"] in REFERENCE_TASK
           else ", 'gap' is ours minus the paper's."),
        "",
        markdown_table(results),
        "",
    ]
    if results.get("parameters"):
        text.append("Trainable parameters: " + ", ".join(
            f"{DISPLAY_NAMES.get(k, k)} {v:,}" for k, v in results["parameters"].items()) + ".")
        text.append("")
    if results.get("failed"):
        text += ["## Failed runs", "", "| run | seed | error |", "|---|---|---|"]
        text += [f"| {f['run']} | {f['seed']} | {f['error']} |" for f in results["failed"]]
        text.append("")
    if results.get("pending"):
        text.append(f"{len(results['pending'])} run(s) have not finished yet; run the sweep again to complete them.")
        text.append("")
    codes = results.get("code") or []
    if not codes:
        text.append("Code version: not recorded (these runs predate recording it).")
    elif len(codes) == 1:
        text.append(f"Produced by {describe(codes[0])}.")
    elif len(codes) > 1:
        text.append("**This store mixes code versions**: " + "; ".join(describe(c) for c in codes) + ".")
    if meta.get("wall_seconds") is not None:
        text.append(f"Wall-clock of this invocation: {meta['wall_seconds']:.0f} s.")
    if meta.get("task"):
        text.append(f"Data: {meta['task']}.")
    text.append("")
    text.append("![accuracy vs perturbation strength](figure.png)")
    if meta.get("curves"):
        text += ["", "## Training", "", meta["runs_table"], "",
                 f"![validation accuracy per epoch of the finished runs]({meta['curves']})"]
    atomic_write_text(Path(out) / "report.md", "\n".join(text) + "\n")


def _curves(results: dict):
    """{kind: [(level, column)]} for every perturbation kind in the columns, level 0 = clean."""
    kinds: dict[str, list] = {}
    for c in results["columns"]:
        m = re.match(r"^([a-z]+)_(.+)$", c)
        if m:
            kinds.setdefault(m.group(1), [(0.0, "clean")]).append((float(m.group(2)), c))
    return kinds


def write_figure(out: Path, results: dict) -> None:

    kinds = _curves(results)
    titles = {"white": "additive white noise σ", "mult": "multiplicative white noise σ_M",
              "sp": "salt and pepper α", "fgsm": "FGSM radius r"}
    fig, axes = subplots(1, len(kinds), figsize=(5.2 * len(kinds), 4), squeeze=False)
    for ax, (kind, pts) in zip(axes[0], kinds.items()):
        levels = [p[0] for p in pts]
        for name, cols in results["models"].items():
            mean = np.array([100 * cols[c]["mean"] for _, c in pts])
            std = np.array([100 * cols[c]["std"] for _, c in pts])
            line, = ax.plot(levels, mean, marker="o", label=DISPLAY_NAMES.get(name, name))
            ax.fill_between(levels, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set_xlabel(titles.get(kind, kind))
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="lower left")
    fig.suptitle(f"{results['task']}: accuracy vs perturbation strength (±1 std over seeds)")
    save_png(fig, Path(out) / "figure.png", dpi=120)


def results_from_index(rows, columns, task: str) -> dict:
    """Aggregate index rows (one per run and seed) into the results.json structure."""
    records: dict[str, list] = {}
    for row in rows:
        if row["status"] == "done":
            records.setdefault(row["run"], []).append(row)
    results = aggregate(task, records, columns)
    results["failed"] = [{k: row.get(k) for k in ("run", "seed", "error")} for row in rows if row["status"] == "failed"]
    results["pending"] = [{"run": row["run"], "seed": row["seed"]} for row in rows if row["status"] == "pending"]
    results["code"] = code_versions(rows)
    results["meta"] = {
        "per_seed": {name: {r["seed"]: r["accuracy"] for r in recs} for name, recs in records.items()},
        "run_seconds": {name: [r.get("seconds") for r in recs] for name, recs in records.items()},
    }
    return results


def code_versions(rows) -> list[dict]:
    """The distinct code versions (package version, commit, dirty) of a store's finished runs;
    more than one means the store mixes code versions."""
    seen = []
    for row in rows:
        if row["status"] == "done":
            code = row.get("code") or {"version": None, "commit": None, "dirty": None}
            if code not in seen:
                seen.append(code)
    return seen


def parameter_counts(out: Path, runs) -> dict:
    """Trainable parameters of each run's model, rebuilt from a saved ``model.json``."""
    from ..models import model_from_config

    counts = {}
    for run in runs:
        for cfg in sorted((Path(out) / "runs" / run).glob("seed*/model.json")):
            model = model_from_config(json.loads(cfg.read_text())["model"])
            counts[run] = sum(p.numel() for p in model.parameters() if p.requires_grad)
            break
    return counts


def report_store(out: Path, extra_meta: dict | None = None, curves: bool = False) -> dict:
    """Aggregate the results store at ``out`` (its index) and write the three outputs; with
    ``curves``, also ``curves.png`` (validation accuracy per epoch of the finished runs)."""
    from .sweep import SWEEP_COPY, read_index

    out = Path(out)
    rows = read_index(out)
    sweep = json.loads((out / SWEEP_COPY).read_text())
    results = results_from_index(rows, sweep["columns"], sweep["task"])
    results["parameters"] = parameter_counts(out, list(results["models"]))
    results["meta"].update(extra_meta or {})
    if curves and results["models"]:
        from .training_curves import runs_table, write_training_curves

        results["meta"]["curves"] = "curves.png"
        results["meta"]["runs_table"] = runs_table(write_training_curves(out, out / "curves.png",
                                                                              title=results["task"]))
    write_outputs(out, results)
    return results


def write_outputs(out: Path, results: dict) -> None:
    out = Path(out)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    write_report(out, results)
    if results["models"]:
        write_figure(out, results)
