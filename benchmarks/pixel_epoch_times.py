"""Measured epoch times of a pixel-MNIST results store, and what the full protocol would take.

    python benchmarks/pixel_epoch_times.py --store results/mnist_pixel --out docs/results/mnist_pixel/epoch_times.md

Reads each run's ``metrics.jsonl`` (cumulative ``seconds`` per epoch: training plus the
epoch's validation pass) and reports the median seconds per epoch per run, then projects the
full protocol of ``configs/sweeps/mnist_full.toml`` (each model's recipe: its epochs, 10 seeds)
on the same machine as sum(epochs x seeds x epoch time) / workers. The projection assumes the
measured conditions (one torch thread per worker, ``--workers`` processes sharing the machine).
Writes markdown to ``--out`` and the numbers beside it as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from noisyrnn.data.files import atomic_write_text
from noisyrnn.experiments.sweep import load_sweep
from noisyrnn.provenance import code_version, describe


def epoch_seconds(metrics: Path) -> list[float]:
    """Per-epoch durations from a metrics log with cumulative ``seconds``."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "seconds" in r]
    cumulative = [r["seconds"] for r in rows]
    return [b - a for a, b in zip([0.0] + cumulative[:-1], cumulative)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="markdown file (JSON written beside it)")
    ap.add_argument("--workers", type=int, default=2, help="parallel workers of the measured run and the projection")
    args = ap.parse_args(argv)
    full = {r.model: (r.config["train"]["epochs"], len(r.seeds)) for r in load_sweep("mnist_full").runs}
    runs = {}
    for run_dir in sorted(p for p in (args.store / "runs").iterdir() if p.is_dir()):
        per_epoch = [s for m in sorted(run_dir.glob("seed*/metrics.jsonl")) for s in epoch_seconds(m)]
        if per_epoch:
            runs[run_dir.name] = {"median_epoch_seconds": statistics.median(per_epoch), "epochs_measured": len(per_epoch)}
    total = 0.0
    for name, rec in runs.items():
        epochs, seeds = full.get(name, (None, None))
        if epochs:
            rec["full_protocol"] = {"epochs": epochs, "seeds": seeds,
                                    "hours_one_worker": rec["median_epoch_seconds"] * epochs * seeds / 3600}
            total += rec["full_protocol"]["hours_one_worker"]
    result = {"store": str(args.store), "workers": args.workers, "runs": runs,
              "full_protocol_hours": total / args.workers, "code": code_version()}
    lines = [f"# Pixel-MNIST epoch times (`{args.store}`)", "",
             f"Median seconds per epoch (58,000 training sequences + the 2,000 validation ones), measured with "
             f"one torch thread per worker and {args.workers} workers sharing this machine; written by "
             f"{describe(result['code'])}.", "",
             "| run | s / epoch | epochs measured | full protocol: epochs x seeds | full protocol, one worker (h) |",
             "|---|---|---|---|---|"]
    for name, rec in runs.items():
        fp = rec.get("full_protocol")
        lines.append(f"| {name} | {rec['median_epoch_seconds']:.0f} | {rec['epochs_measured']} | "
                     + (f"{fp['epochs']} x {fp['seeds']} | {fp['hours_one_worker']:.0f} |" if fp else "— | — |"))
    lines += ["", f"The full protocol (`noisyrnn reproduce mnist --protocol full`, every row) would take about "
              f"**{result['full_protocol_hours']:.0f} hours** on this machine with {args.workers} workers, "
              "evaluation not included."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
