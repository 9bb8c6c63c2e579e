"""Training curves of a results store: validation accuracy per epoch of every run and seed
(``runs/RUN/seedK/metrics.jsonl``, one line per epoch) in one plot, ``curves.png``, with the
epochs where the learning rate changed (a scheduled decay) marked on each curve."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from .figures import save_png, subplots
from .paper import DISPLAY_NAMES


def read_curves(store: Path, finished_only: bool = True) -> dict[str, dict]:
    """{"RUN/seedK": {"epoch", "val_accuracy", "lr": lists, "finished": bool}} for each run of the
    store that has a metrics log (only those with a ``result.json`` when ``finished_only``)."""
    curves = {}
    for log in sorted(Path(store).glob("runs/*/seed*/metrics.jsonl")):
        finished = (log.parent / "result.json").is_file()
        if finished_only and not finished:
            continue
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get("val_accuracy") is not None]
        if rows:
            curves[f"{log.parent.parent.name}/{log.parent.name}"] = {
                "epoch": [r["epoch"] + 1 for r in rows], "val_accuracy": [r["val_accuracy"] for r in rows],
                "lr": [r.get("lr") for r in rows], "seconds": rows[-1].get("seconds"), "finished": finished}
    return curves


def runs_table(curves: dict[str, dict]) -> str:
    """A markdown table: each run's epochs, training wall-clock (the metrics log's cumulative
    seconds, summed over resumes), learning-rate decays, final and best validation accuracy."""
    lines = ["| run | seed | epochs | wall-clock (h) | lr decayed after epoch | final val % | best val % (epoch) |",
             "|---|---|---|---|---|---|---|"]
    for name, c in curves.items():
        run, seed = name.split("/")
        best = max(range(len(c["epoch"])), key=lambda i: c["val_accuracy"][i])
        hours = c["seconds"]
        lines.append(f"| {run} | {seed.removeprefix('seed')} | {c['epoch'][-1]} | "
                     f"{'—' if hours is None else f'{hours / 3600:.2f}'} | "
                     f"{', '.join(map(str, lr_changes(c))) or '—'} | {100 * c['val_accuracy'][-1]:.2f} | "
                     f"{100 * c['val_accuracy'][best]:.2f} ({c['epoch'][best]}) |")
    return "\n".join(lines)


def lr_changes(curve: dict) -> list[int]:
    """Epochs (1-based) after which the schedule changed the learning rate (the log records, per
    epoch, the rate after that epoch's scheduler step, i.e. the next epoch's)."""
    lr, epochs = curve["lr"], curve["epoch"]
    return [epochs[i] for i in range(1, len(lr)) if lr[i] is not None and lr[i - 1] is not None and lr[i] != lr[i - 1]]


def _label(name: str, curve: dict) -> str:
    run, seed = name.split("/")
    text = f"{DISPLAY_NAMES.get(run, run)} ({run}, {seed})"
    return text if curve["finished"] else text + f", training: epoch {curve['epoch'][-1]}"


def training_curves_figure(curves: dict[str, dict], title: str):
    """The figure: validation accuracy per epoch (left: every epoch; right: the top 5 points),
    learning-rate decays dotted, runs still training dashed."""
    fig, (full, zoom) = subplots(1, 2, figsize=(12, 4.5))
    best = max(max(c["val_accuracy"]) for c in curves.values())
    for name, curve in curves.items():
        acc = [100 * a for a in curve["val_accuracy"]]
        for ax in (full, zoom):
            line, = ax.plot(curve["epoch"], acc, label=_label(name, curve), linestyle="-" if curve["finished"] else "--")
            for epoch in lr_changes(curve):
                ax.axvline(epoch, color=line.get_color(), linestyle=":", alpha=0.6)
    zoom.set_ylim(100 * best - 5, 100 * best + 0.5)
    for ax, panel in ((full, "every epoch"), (zoom, "top 5 points")):
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(panel)
        ax.grid(alpha=0.3)
    full.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{title}: validation accuracy per epoch (dotted: learning-rate decay)")
    return fig


def write_training_curves(store: Path, out_png: Path | None = None, finished_only: bool = True,
                          title: str | None = None) -> dict:
    """Plot the store's curves (:func:`training_curves_figure`) into ``out_png`` (default
    ``STORE/curves.png``); returns the curves drawn."""
    curves = read_curves(store, finished_only)
    if not curves:
        raise ConfigError(f"{store}: no {'finished ' if finished_only else ''}run with a metrics log "
                          "(runs/RUN/seedK/metrics.jsonl) to plot")
    out_png = Path(out_png) if out_png is not None else Path(store) / "curves.png"
    save_png(training_curves_figure(curves, title or Path(store).name), out_png, dpi=110)
    return curves
