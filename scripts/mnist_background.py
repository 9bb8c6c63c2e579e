"""The background pixel-MNIST runs at the paper's recipe: ordered pixel MNIST (sweep
``mnist_paper_recipe``, Tables 1-2), then permuted pixel MNIST (sweep ``pmnist_paper_recipe``,
the Lipschitz RNN and the NRNN); start or resume them, and snapshot their stores into the
repository.

    python scripts/mnist_background.py start      # resume (or start) the chain in the background,
                                                  # 1 worker x 1 thread, one sweep after the other
    python scripts/mnist_background.py status     # each run's epoch, lr and validation accuracy
    python scripts/mnist_background.py project    # the unfinished runs' projected hours (one worker)
    python scripts/mnist_background.py snapshot   # copy each store's resumable state + partial report
                                                  # (tables, figure, training curves) into
                                                  # docs/results/{mnist,pmnist}_pixel_full/ (commit it)

The sweeps run from one frozen git worktree of one commit (``docs/results/mnist_pixel_full/CODE``,
written at the first start), so every run of a store records one code version. The stores live
outside the checkout (``--stores``, default ``../stores/SWEEP``); a missing store (a new machine)
is seeded from its committed snapshot, whose training states resume exactly. A store's own lock
keeps one copy of its sweep running; a second start queues behind it (``--wait``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_ROOT = ROOT / "docs" / "results"
# the chain, in order: sweep -> its results folder
SWEEPS = {"mnist_paper_recipe": "mnist_pixel_full", "pmnist_paper_recipe": "pmnist_pixel_full"}
CODE = RESULTS_ROOT / "mnist_pixel_full" / "CODE"  # one frozen commit for the whole chain
EPOCH_RATIOS = RESULTS_ROOT / "mnist_pixel" / "epoch_times.json"
KEEP = ("state.safetensors", "metrics.jsonl", "result.json", "error.json", "model.safetensors", "model.json")


def git(*args, cwd=ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def results_dir(sweep: str) -> Path:
    return RESULTS_ROOT / SWEEPS[sweep]


def sweep_argument(sweep: str, wt: Path) -> str:
    """The shipped sweep's name where the frozen worktree ships it, else a frozen copy of this
    checkout's file in the sweep's results folder (``sweep.toml``, written at the first start and
    committed with the snapshots), so later edits of the shipped file cannot change what runs."""
    if (wt / "src" / "noisyrnn" / "configs" / "sweeps" / f"{sweep}.toml").is_file():
        return sweep
    frozen = results_dir(sweep) / "sweep.toml"
    if not frozen.is_file():
        frozen.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "src" / "noisyrnn" / "configs" / "sweeps" / f"{sweep}.toml", frozen)
    return str(frozen)


def worktree(args) -> tuple[Path, str]:
    commit = CODE.read_text().strip() if CODE.is_file() else git("rev-parse", "HEAD")
    wt = args.worktree.resolve()
    if not (wt / "src" / "noisyrnn").is_dir():
        subprocess.run(["git", "worktree", "add", "-f", "--detach", str(wt), commit], cwd=ROOT, check=True)
    if git("rev-parse", "HEAD", cwd=wt) != commit:
        raise SystemExit(f"{wt} is at {git('rev-parse', 'HEAD', cwd=wt)}, not the stores' code {commit}")
    CODE.parent.mkdir(parents=True, exist_ok=True)
    CODE.write_text(commit + "\n")
    return wt, commit


def check_interpreter() -> None:
    """Refuse to start a chain whose every sweep would fail at ``import torch`` in the background."""
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    if probe.returncode != 0:
        raise SystemExit(f"{sys.executable} cannot import torch: run this script with the project's "
                         f"environment (make install, then .venv/bin/python scripts/{Path(__file__).name} start)")


def start(args) -> None:
    check_interpreter()
    wt, commit = worktree(args)
    args.stores.mkdir(parents=True, exist_ok=True)
    commands = []
    for sweep in SWEEPS:
        store, snap = args.stores.resolve() / sweep, results_dir(sweep) / "store"
        if not (store / "runs").is_dir() and (snap / "runs").is_dir():
            shutil.copytree(snap, store, dirs_exist_ok=True)
            print(f"seeded {store} from {snap}")
        cmd = [sys.executable, "-m", "noisyrnn.cli", "--keep-freed-memory", "sweep", sweep_argument(sweep, wt),
               "--out", str(store), "--workers", str(args.workers), "--threads", str(args.threads),
               "--data-dir", str(args.data_dir.resolve()), "--no-progress", "--wait"]
        commands.append(f"{shlex.join(cmd)} >> {shlex.quote(str(store.parent / f'{sweep}.log'))} 2>&1")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(wt / "src")}
    chain = " && ".join(commands)  # a failed sweep stops the chain; a running one is waited for (--wait)
    proc = subprocess.Popen(["bash", "-c", chain], cwd=wt, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    print(f"started pid {proc.pid} (code {commit[:10]}): {', then '.join(SWEEPS)}; logs {args.stores}/SWEEP.log")


def status_rows(store: Path) -> list[dict]:
    rows = []
    for log in sorted(store.glob("runs/*/seed*/metrics.jsonl")):
        lines = log.read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}
        rows.append({"run": f"{log.parent.parent.name}/{log.parent.name}", "epochs_done": len(lines),
                     "lr": last.get("lr"), "val_accuracy": last.get("val_accuracy"),
                     "hours": round(last.get("seconds", 0) / 3600, 2),
                     "finished": (log.parent / "result.json").is_file()})
    return rows


def status(args) -> None:
    for sweep in SWEEPS:
        for row in status_rows(args.stores / sweep):
            print(json.dumps({"sweep": sweep, **row}))


def epoch_seconds(log: Path) -> list[float]:
    """Per-epoch training seconds of a metrics log (its cumulative ``seconds``, kept across resumes)."""
    cumulative = [json.loads(line)["seconds"] for line in log.read_text().splitlines() if line.strip()]
    return [b - a for a, b in zip([0.0] + cumulative, cumulative)]


def median_epoch_seconds(store: Path) -> dict[str, float]:
    measured: dict[str, list] = {}
    for log in store.glob("runs/*/seed*/metrics.jsonl"):
        measured.setdefault(log.parent.parent.name, []).extend(epoch_seconds(log))
    return {run: statistics.median(v) for run, v in measured.items() if v}


def projection(store: Path, reference: Path | None = None) -> dict:
    """Hours of training left in ``store``: each unfinished run's remaining epochs x its model's
    median epoch time in this store, else in the ``reference`` store (the same model on ordered
    pixels), else the Lipschitz RNN's there x the two models' ratio in the 5-epoch protocol's
    measured epoch times (``docs/results/mnist_pixel/epoch_times.json``; an older engine, so a
    rough figure)."""
    if not (store / "sweep.json").is_file():
        return {"runs_left": None, "hours_left_one_worker": None, "runs": [], "note": "not started"}
    sweep = json.loads((store / "sweep.json").read_text())
    here = median_epoch_seconds(store)
    there = median_epoch_seconds(reference) if reference is not None else {}
    ratios = json.loads(EPOCH_RATIOS.read_text())["runs"]
    base = here.get("lipschitz") or there.get("lipschitz")
    left, runs = 0.0, []
    for spec in sweep["runs"]:
        for seed in spec["seeds"]:
            folder = store / "runs" / spec["name"] / f"seed{seed}"
            if (folder / "result.json").is_file():
                continue
            log = folder / "metrics.jsonl"
            done = len(epoch_seconds(log)) if log.is_file() else 0
            if spec["name"] in here:
                per_epoch, source = here[spec["name"]], "measured here"
            elif spec["name"] in there:
                per_epoch, source = there[spec["name"]], f"measured in {reference.name}"
            else:
                ratio = ratios[spec["model"]]["median_epoch_seconds"] / ratios["lipschitz"]["median_epoch_seconds"]
                per_epoch, source = base * ratio, f"lipschitz x {ratio:.2f} (5-epoch protocol)"
            hours = (spec["config"]["train"]["epochs"] - done) * per_epoch / 3600
            left += hours
            runs.append({"run": f"{spec['name']}/seed{seed}", "epochs_done": done,
                         "epochs": spec["config"]["train"]["epochs"], "epoch_seconds": round(per_epoch, 1),
                         "source": source, "hours_left": round(hours, 2)})
    runs.sort(key=lambda r: int(r["run"].rsplit("seed", 1)[1]))  # the sweeps' seed-major order
    return {"runs_left": len(runs), "hours_left_one_worker": round(left, 1), "runs": runs}


def projections(args) -> dict:
    first = args.stores / next(iter(SWEEPS))
    return {sweep: projection(args.stores / sweep, None if args.stores / sweep == first else first)
            for sweep in SWEEPS}


def project(args) -> None:
    print(json.dumps(projections(args), indent=2))


def snapshot(args) -> None:
    plans = projections(args)
    for sweep in SWEEPS:
        store, results = (args.stores / sweep).resolve(), results_dir(sweep)
        if not (store / "sweep.json").is_file():
            continue
        snap = results / "store"
        for p in store.rglob("*"):
            if p.is_file() and (p.name in KEEP or p.parent == store and p.suffix in (".json", ".jsonl")):
                dest = snap / p.relative_to(store)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, dest)
        if any(store.glob("runs/*/seed*/result.json")):
            # the report (this checkout's code) reads the runs' own recorded code version
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
            subprocess.run([sys.executable, "-m", "noisyrnn.cli", "report", str(snap), "--curves"], env=env,
                           check=True, stdout=subprocess.DEVNULL)
            for name in ("report.md", "results.json", "figure.png", "curves.png"):
                if (snap / name).is_file():
                    shutil.move(snap / name, results / name)
        progress = {"runs": status_rows(store), "projection": plans[sweep]}
        (results / "progress.json").write_text(json.dumps(progress, indent=2) + "\n")
        print(f"snapshot of {sweep} in {snap}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("start", "status", "snapshot", "project"))
    ap.add_argument("--stores", type=Path, default=ROOT.parent / "stores", help="folder of the stores (STORES/SWEEP)")
    ap.add_argument("--worktree", type=Path, default=ROOT.parent / "mnist-wt")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    {"start": start, "status": status, "snapshot": snapshot, "project": project}[args.action](args)
