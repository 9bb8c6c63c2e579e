"""A results store and a training folder have one owner at a time; a run is claimed before it trains."""

import json
import os
import subprocess
import sys
import time

from noisyrnn.cli import main
from noisyrnn.experiments.sweep import load_sweep, read_index
from noisyrnn.experiments.worker import CLAIM
from noisyrnn.locking import FolderLock
from test_sweep import make_configs, write_sweep

SWEEP = 'task = "ecg"\nmodels = ["lipschitz", "antisymmetric"]\nseeds = [0, 1]\nbatch_seeds = false\n'


def test_a_second_sweep_into_a_busy_store_fails_at_once_naming_the_holder(tmp_path, capsys):
    cfg = make_configs(tmp_path, epochs=1)
    sweep = write_sweep(tmp_path, SWEEP)
    out = tmp_path / "store"
    with FolderLock(out, what="results store"):  # another invocation holds it
        t0 = time.time()
        rc = main(["sweep", str(sweep), "--out", str(out), "--config-dir", str(cfg), "--no-progress"])
        assert time.time() - t0 < 5
    err = capsys.readouterr().err
    assert rc == 2 and f"is in use by process {os.getpid()}" in err and err.count("\n") == 1
    assert not (out / "runs").exists()  # nothing trained


def test_two_concurrent_sweep_processes_never_both_train(tmp_path):
    cfg = make_configs(tmp_path, epochs=3)
    sweep = write_sweep(tmp_path, SWEEP)
    out = tmp_path / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "noisyrnn.cli", "sweep", str(sweep), "--out", str(out), "--config-dir", str(cfg),
           "--no-progress"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / ".lock").is_file():
        time.sleep(0.01)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert second.returncode == 2, second.stderr
    assert f"in use by process {first.pid}" in second.stderr
    assert first.wait() == 0
    waited = subprocess.run(cmd + ["--wait"], env=env, capture_output=True, text=True)  # queues, then finds all done
    assert waited.returncode == 0
    rows = read_index(out)
    assert [r["status"] for r in rows] == ["done"] * 4
    for r in rows:  # each run trained once: its log has one line per epoch
        log = (out / "runs" / r["run"] / f"seed{r['seed']}" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in log] == [0, 1, 2]


def test_a_claimed_run_is_left_to_its_claimant(tmp_path, capsys):
    cfg = make_configs(tmp_path, epochs=1)
    sweep = write_sweep(tmp_path, SWEEP)
    out = tmp_path / "store"
    with FolderLock(out / "runs" / "lipschitz" / "seed1", CLAIM, what="run"):  # e.g. a Ray task retried elsewhere
        main(["sweep", str(sweep), "--out", str(out), "--config-dir", str(cfg), "--no-progress"])
    status = {(r["run"], r["seed"]): r["status"] for r in read_index(out)}
    assert status == {("lipschitz", 0): "done", ("lipschitz", 1): "pending", ("antisymmetric", 0): "done",
                      ("antisymmetric", 1): "done"}
    assert not (out / "runs" / "lipschitz" / "seed1" / "metrics.jsonl").exists()


def test_seed_order_runs_every_models_first_seed_first():
    from noisyrnn.experiments.runner import plan_jobs

    sweep = load_sweep("mnist_paper_recipe")
    order = [(j["spec"]["name"], j["seeds"]) for j in plan_jobs(sweep, "/nonexistent", 1)]
    assert order == [("lipschitz", [0]), ("nrnn", [0]), ("nrnn_high", [0]), ("exprnn", [0]), ("antisymmetric", [0]),
                     ("cornn", [0]), ("lipschitz", [1]), ("nrnn", [1]), ("nrnn_high", [1])]
    recipe = {r.name: r.config["train"] for r in sweep.runs}
    assert recipe["lipschitz"]["epochs"] == 100 and recipe["lipschitz"]["lr_milestones"] == [90]
    assert recipe["cornn"]["epochs"] == 120 and recipe["cornn"]["lr_milestones"] == [100]
