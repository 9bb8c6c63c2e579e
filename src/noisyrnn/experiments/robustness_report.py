"""``noisyrnn evaluate RUN --data PATH``: a trained model's robustness on the user's data,
written as ``report.md``, ``robustness.png`` and ``robustness.json`` (atomically).

Perturbation levels act on the model's inputs. With the default normalisation those are
z-scored per channel with the training split's statistics, so ``white_0.4`` adds noise of
0.4 training standard deviations of each channel (0.4 * std_c in the data's own units); the
report states the per-channel scale so that a level can be read in the sensor's units.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..data.files import atomic_write_text
from ..data.task import Split
from ..evaluation import robustness


def scale_note(normalization) -> dict:
    if normalization is None:
        return {"normalized": False,
                "levels": "in the data's own units (the model was trained without normalisation)"}
    return {"normalized": True, "channel_mean": list(normalization.mean), "channel_std": list(normalization.std),
            "levels": "in units of each channel's training standard deviation (inputs are z-scored): "
                      "white_S adds N(0, (S * std_c)^2) in the data's units of channel c"}


def evaluate_split(model, split: Split, columns, seed: int, value_range) -> dict[str, float]:
    return robustness(model, split, columns, seed=seed, value_range=value_range)


def write_robustness_report(out: Path, accuracy: dict, meta: dict) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"accuracy": accuracy, **meta}
    atomic_write_text(out / "robustness.json", json.dumps(result, indent=2))
    lines = [f"# Robustness of {meta.get('model', 'the model')} on {meta.get('data', 'the data')}", "",
             f"{meta.get('sequences', '?')} sequences; perturbations at test time, noise injection off; "
             f"levels {meta['scale']['levels']}.", "",
             "| column | accuracy (%) |", "|---|---|"]
    lines += [f"| {c} | {100 * a:.1f} |" for c, a in accuracy.items()]
    if meta["scale"].get("normalized"):
        stds = ", ".join(f"{s:.4g}" for s in meta["scale"]["channel_std"][:12])
        lines += ["", f"Per-channel training standard deviation (the unit of the levels): {stds}"]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    _figure(out / "robustness.png", accuracy)
    return result


def _figure(path: Path, accuracy: dict) -> None:
    from .figures import save_png, subplots

    kinds: dict[str, list] = {}
    for column, acc in accuracy.items():
        m = re.match(r"^([a-z]+)_([0-9.]+)$", column)
        if m:
            kinds.setdefault(m.group(1), []).append((float(m.group(2)), acc))
    fig, ax = subplots(figsize=(5, 3.5))
    clean = accuracy.get("clean")
    for kind, points in kinds.items():
        points = sorted(points)
        xs = [0.0] + [p[0] for p in points] if clean is not None else [p[0] for p in points]
        ys = [clean] + [p[1] for p in points] if clean is not None else [p[1] for p in points]
        ax.plot(xs, 100 * np.asarray(ys), marker="o", label=kind)
    ax.set_xlabel("perturbation level")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    if kinds:
        ax.legend()
    save_png(fig, path)
