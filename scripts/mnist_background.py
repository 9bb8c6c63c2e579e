"""The background pixel-MNIST run at the paper's recipe (sweep ``mnist_paper_recipe``): start or
resume it, and snapshot its store into the repository.

    python scripts/mnist_background.py start      # resume (or start) in the background, 1 worker x 1 thread
    python scripts/mnist_background.py status     # each run's epoch, lr and validation accuracy
    python scripts/mnist_background.py project    # the unfinished runs' projected hours (one worker)
    python scripts/mnist_background.py snapshot   # copy the store's resumable state + partial report
                                                  # (tables, figure, training curves) into
                                                  # docs/results/mnist_pixel_full/ (commit it)

The sweep runs from a frozen git worktree of one commit (``docs/results/mnist_pixel_full/CODE``,
written at the first start), so every run of the store records one code version. The store
lives outside the checkout (``--store``, default ``../stores/mnist_paper_recipe``); when it is
missing (a new machine) it is seeded from the committed snapshot, whose training states
resume exactly. The store's own lock refuses a second copy of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "mnist_pixel_full"
SNAPSHOT = RESULTS / "store"
CODE = RESULTS / "CODE"
KEEP = ("state.safetensors", "metrics.jsonl", "result.json", "error.json", "model.safetensors", "model.json")


def git(*args, cwd=ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def start(args) -> None:
    commit = CODE.read_text().strip() if CODE.is_file() else git("rev-parse", "HEAD")
    wt = args.worktree.resolve()
    if not (wt / "src" / "noisyrnn").is_dir():
        subprocess.run(["git", "worktree", "add", "-f", "--detach", str(wt), commit], cwd=ROOT, check=True)
    if git("rev-parse", "HEAD", cwd=wt) != commit:
        raise SystemExit(f"{wt} is at {git('rev-parse', 'HEAD', cwd=wt)}, not the store's code {commit}")
    store = args.store.resolve()
    if not (store / "runs").is_dir() and (SNAPSHOT / "runs").is_dir():
        shutil.copytree(SNAPSHOT, store, dirs_exist_ok=True)
        print(f"seeded {store} from {SNAPSHOT}")
    store.parent.mkdir(parents=True, exist_ok=True)
    CODE.parent.mkdir(parents=True, exist_ok=True)
    CODE.write_text(commit + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(wt / "src")}
    cmd = [sys.executable, "-m", "noisyrnn.cli", "--keep-freed-memory", "sweep", "mnist_paper_recipe", "--out",
           str(store), "--workers", str(args.workers), "--threads", str(args.threads), "--data-dir",
           str(args.data_dir.resolve()), "--no-progress"]
    log = open(store.parent / f"{store.name}.log", "a")
    proc = subprocess.Popen(cmd, cwd=wt, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    print(f"started pid {proc.pid} (code {commit[:10]}): {' '.join(cmd)}; log {log.name}")


def status(args) -> list[dict]:
    rows = []
    for log in sorted(args.store.glob("runs/*/seed*/metrics.jsonl")):
        lines = log.read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}
        rows.append({"run": f"{log.parent.parent.name}/{log.parent.name}", "epochs_done": len(lines),
                     "lr": last.get("lr"), "val_accuracy": last.get("val_accuracy"),
                     "hours": round(last.get("seconds", 0) / 3600, 2),
                     "finished": (log.parent / "result.json").is_file()})
    for r in rows:
        print(json.dumps(r))
    return rows


def project(args) -> None:
    print(json.dumps(projection(args.store.resolve()), indent=2))


def epoch_seconds(log: Path) -> list[float]:
    """Per-epoch training seconds of a metrics log (its cumulative ``seconds``, kept across resumes)."""
    cumulative = [json.loads(line)["seconds"] for line in log.read_text().splitlines() if line.strip()]
    return [b - a for a, b in zip([0.0] + cumulative, cumulative)]


def projection(store: Path) -> dict:
    """Hours of training left: each unfinished run's remaining epochs x its model's median epoch
    time in this store, or, for a model with no epoch here yet, the Lipschitz RNN's median here x
    the two models' ratio in the 5-epoch protocol's measured epoch times
    (docs/results/mnist_pixel/epoch_times.json; an older engine, so a rough figure)."""
    import statistics

    sweep = json.loads((store / "sweep.json").read_text())
    measured = {}
    for log in store.glob("runs/*/seed*/metrics.jsonl"):
        measured.setdefault(log.parent.parent.name, []).extend(epoch_seconds(log))
    measured = {run: statistics.median(v) for run, v in measured.items() if v}
    ratios = json.loads((ROOT / "docs" / "results" / "mnist_pixel" / "epoch_times.json").read_text())["runs"]
    left, runs = 0.0, []
    for spec in sweep["runs"]:
        for seed in spec["seeds"]:
            folder = store / "runs" / spec["name"] / f"seed{seed}"
            if (folder / "result.json").is_file():
                continue
            log = folder / "metrics.jsonl"
            done = len(epoch_seconds(log)) if log.is_file() else 0
            if spec["name"] in measured:
                per_epoch, source = measured[spec["name"]], "measured here"
            else:
                ratio = ratios[spec["model"]]["median_epoch_seconds"] / ratios["lipschitz"]["median_epoch_seconds"]
                per_epoch, source = measured["lipschitz"] * ratio, f"lipschitz here x {ratio:.2f} (5-epoch protocol)"
            hours = (spec["config"]["train"]["epochs"] - done) * per_epoch / 3600
            left += hours
            runs.append({"run": f"{spec['name']}/seed{seed}", "epochs_done": done,
                         "epochs": spec["config"]["train"]["epochs"], "epoch_seconds": round(per_epoch, 1),
                         "source": source, "hours_left": round(hours, 2)})
    runs.sort(key=lambda r: int(r["run"].rsplit("seed", 1)[1]))  # the sweep's seed-major order
    return {"runs_left": len(runs), "hours_left_one_worker": round(left, 1), "runs": runs}


def snapshot(args) -> None:
    store = args.store.resolve()
    for p in store.rglob("*"):
        if p.is_file() and (p.name in KEEP or p.parent == store and p.suffix in (".json", ".jsonl")):
            dest = SNAPSHOT / p.relative_to(store)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)
    if any(store.glob("runs/*/seed*/result.json")):
        # the report (this checkout's code) reads the runs' own recorded code version
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        subprocess.run([sys.executable, "-m", "noisyrnn.cli", "report", str(SNAPSHOT), "--curves"], env=env,
                       check=True)
        for name in ("report.md", "results.json", "figure.png", "curves.png"):
            if (SNAPSHOT / name).is_file():
                shutil.move(SNAPSHOT / name, RESULTS / name)
    progress = {"runs": status(args), "projection": projection(store)}
    (RESULTS / "progress.json").write_text(json.dumps(progress, indent=2) + "\n")
    print(f"snapshot in {SNAPSHOT}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("start", "status", "snapshot", "project"))
    ap.add_argument("--store", type=Path, default=ROOT.parent / "stores" / "mnist_paper_recipe")
    ap.add_argument("--worktree", type=Path, default=ROOT.parent / "mnist-wt")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    {"start": start, "status": status, "snapshot": snapshot, "project": project}[args.action](args)
