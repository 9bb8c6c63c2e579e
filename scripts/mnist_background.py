"""The background pixel-MNIST run at the paper's recipe (sweep ``mnist_paper_recipe``): start or
resume it, and snapshot its store into the repository.

    python scripts/mnist_background.py start      # resume (or start) in the background, 1 worker x 1 thread
    python scripts/mnist_background.py status     # each run's epoch, lr and validation accuracy
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
    (RESULTS / "progress.json").write_text(json.dumps(status(args), indent=2))
    print(f"snapshot in {SNAPSHOT}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("start", "status", "snapshot"))
    ap.add_argument("--store", type=Path, default=ROOT.parent / "stores" / "mnist_paper_recipe")
    ap.add_argument("--worktree", type=Path, default=ROOT.parent / "mnist-wt")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    {"start": start, "status": status, "snapshot": snapshot}[args.action](args)
