"""Sweeps: the results store, resume after SIGKILL, failures recorded, Ray = local."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import state_epoch
from noisyrnn.cli import main
from noisyrnn.experiments.sweep import load_sweep, read_index

BASE = """
model = "{model}"
[params]
hidden_size = 8
step = 0.1
[train]
epochs = {epochs}
batch_size = 100
lr = 0.01
lr_milestones = {milestones}
"""


def make_configs(root: Path, epochs=2, milestones=()) -> Path:
    d = root / "configs"
    d.mkdir(exist_ok=True)
    for m in ("nrnn", "lipschitz", "antisymmetric"):
        (d / f"{m}.toml").write_text(BASE.format(model=m, epochs=epochs, milestones=list(milestones)))
    return d



def write_sweep(root: Path, body: str) -> Path:
    p = root / "sweep.toml"
    p.write_text(body)
    return p


def accuracies(out: Path) -> dict:
    return {(r["run"], r["seed"]): r.get("accuracy") for r in read_index(out)}


def test_sweep_grid_failure_and_report(tmp_path, capsys):
    cfg = make_configs(tmp_path)
    sweep = write_sweep(tmp_path, """
task = "ecg"
models = ["lipschitz", "antisymmetric"]
seeds = [0, 1]
[grid]
"train.lr" = [0.01, 1e9]
""")
    out = tmp_path / "store"
    rc = main(["sweep", str(sweep), "--out", str(out), "--config-dir", str(cfg), "--no-progress"])
    assert rc == 1  # some runs failed, the rest completed
    rows = read_index(out)
    assert len(rows) == 8
    failed = [r for r in rows if r["status"] == "failed"]
    done = [r for r in rows if r["status"] == "done"]
    # the Lipschitz RNN diverges at lr=1e9; the bounded antisymmetric drift does not
    assert sorted((r["run"], r["seed"]) for r in failed) == [("lipschitz__lr=1e+09", 0), ("lipschitz__lr=1e+09", 1)]
    assert all("TrainingDiverged" in r["error"] for r in failed)
    assert len(done) == 6
    report = (out / "report.md").read_text()
    assert "## Failed runs" in report and "lipschitz__lr=1e+09" in report
    res = json.loads((out / "results.json").read_text())
    assert set(res["models"]) == {"lipschitz__lr=0.01", "antisymmetric__lr=0.01", "antisymmetric__lr=1e+09"}
    assert len(res["failed"]) == 2
    from noisyrnn.provenance import code_version

    assert res["code"] == [code_version()]  # every result.json records the code that produced it
    assert all(r["code"] == code_version() for r in done)
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "lipschitz__lr=0.01" in capsys.readouterr().out


@pytest.mark.slow
def test_sweep_survives_sigkill_and_matches_uninterrupted(tmp_path):
    cfg = make_configs(tmp_path, epochs=12, milestones=[9])  # the kill falls before a run's milestone
    body = 'task = "ecg"\nmodels = ["lipschitz", "antisymmetric"]\nseeds = [0, 1, 2, 3]\nbatch_seeds = false\n'
    sweep = write_sweep(tmp_path, body)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "noisyrnn.cli", "sweep", str(sweep), "--config-dir", str(cfg), "--no-progress"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(killed)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    # kill once at least two runs finished and a third is part-way (has a checkpoint, no result)
    while time.time() < deadline:
        results = list(killed.glob("runs/*/seed*/result.json"))
        states = [p for p in killed.glob("runs/*/seed*/state.safetensors") if not (p.parent / "result.json").exists()]
        if len(results) >= 2 and any(0 <= state_epoch(p.parent) < 8 for p in states):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in killed.glob("runs/*/seed*/result.json")}
    assert 2 <= len(finished) < 8
    assert subprocess.run(cmd + ["--out", str(killed)], env=env, capture_output=True).returncode == 0
    for p, mtime in finished.items():
        assert p.stat().st_mtime_ns == mtime, f"{p} was redone"
    clean = tmp_path / "clean"
    assert subprocess.run(cmd + ["--out", str(clean)], env=env, capture_output=True).returncode == 0
    assert accuracies(killed) == accuracies(clean)
    assert all(v is not None for v in accuracies(clean).values())

    def logs(out):  # every epoch's metrics of every run, lr included, but the timings
        return {str(p.relative_to(out)): [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                                          for line in p.read_text().splitlines()]
                for p in sorted(out.glob("runs/*/seed*/metrics.jsonl"))}

    assert logs(killed) == logs(clean)
    assert all(log[9]["lr"] == pytest.approx(0.001) for log in logs(clean).values())


@pytest.mark.slow
def test_ray_executor_matches_local(tmp_path):
    pytest.importorskip("ray")
    cfg = make_configs(tmp_path)
    sweep = write_sweep(tmp_path, 'task = "ecg"\nmodels = ["nrnn", "lipschitz"]\nseeds = [0, 1, 2, 3]\n'
                                  '[grid]\n"params.step" = [0.1, 0.2]\n')
    assert len(load_sweep(sweep, config_dir=cfg).runs) == 4  # 4 configs x 4 seeds = 16 runs
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    assert main(["sweep", str(sweep), "--out", str(local), "--config-dir", str(cfg), "--no-progress",
                 "--workers", "2"]) == 0
    assert main(["sweep", str(sweep), "--out", str(ray_out), "--config-dir", str(cfg), "--no-progress",
                 "--workers", "2", "--executor", "ray"]) == 0
    a, b = accuracies(local), accuracies(ray_out)
    assert len(a) == 16 and a == b
    import ray

    assert not ray.is_initialized(), "the executor must stop the Ray instance it started"


def test_store_accumulates_runs_across_calls_and_refuses_another_task(tmp_path):
    cfg = make_configs(tmp_path, epochs=1)
    out = tmp_path / "store"
    first = write_sweep(tmp_path, 'task = "ecg"\nmodels = ["lipschitz"]\nseeds = [0]\n')
    assert main(["sweep", str(first), "--out", str(out), "--config-dir", str(cfg), "--no-progress"]) == 0
    before = accuracies(out)
    second = tmp_path / "second.toml"
    second.write_text('task = "ecg"\nmodels = ["nrnn"]\nseeds = [0]\n')
    assert main(["sweep", str(second), "--out", str(out), "--config-dir", str(cfg), "--no-progress"]) == 0
    after = accuracies(out)
    assert set(after) == {("lipschitz", 0), ("nrnn", 0)}  # both rows reported
    assert after[("lipschitz", 0)] == before[("lipschitz", 0)]  # the first run was kept, not redone
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"lipschitz", "nrnn"}
    other = tmp_path / "other.toml"
    other.write_text('task = "mnist_rows"\nmodels = ["nrnn"]\nseeds = [0]\n')
    assert main(["sweep", str(other), "--out", str(out), "--config-dir", str(cfg), "--no-progress"]) == 2


def test_report_curves_plot_finished_runs_and_mark_the_milestone(tmp_path, capsys):
    from noisyrnn.experiments.training_curves import read_curves, training_curves_figure

    cfg = make_configs(tmp_path, epochs=3, milestones=[2])
    sweep = write_sweep(tmp_path, 'task = "ecg"\nmodels = ["lipschitz", "antisymmetric"]\nseeds = [0]\n')
    out = tmp_path / "store"
    assert main(["sweep", str(sweep), "--out", str(out), "--config-dir", str(cfg), "--no-progress"]) == 0
    # a run still training (metrics, no result.json) is left out of the plot of finished runs
    partial = out / "runs" / "nrnn" / "seed0"
    partial.mkdir(parents=True)
    (partial / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "val_accuracy": 0.5, "lr": 0.01}) + "\n")
    capsys.readouterr()
    assert main(["report", str(out), "--curves"]) == 0
    assert "curves.png" in capsys.readouterr().out
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = read_curves(out)
    figure = training_curves_figure(curves, "ecg")
    assert figure.get_suptitle().startswith("ecg: validation accuracy per epoch")
    assert [ax.get_title() for ax in figure.axes] == ["every epoch", "top 5 points"]
    assert sorted(curves) == ["antisymmetric/seed0", "lipschitz/seed0"]
    assert "nrnn/seed0" in read_curves(out, finished_only=False)
    for name, curve in curves.items():
        logged = [json.loads(line) for line in (out / "runs" / name / "metrics.jsonl").read_text().splitlines()]
        assert curve["val_accuracy"] == [r["val_accuracy"] for r in logged] and curve["epoch"] == [1, 2, 3]
    report = (out / "report.md").read_text()
    # the configured milestone (lr x0.1 from the third epoch on) appears as "decayed after epoch 2"
    rows = [line for line in report.splitlines() if line.startswith(("| lipschitz | 0 |", "| antisymmetric | 0 |"))]
    assert len(rows) == 2 and all(line.split(" | ")[4] == "2" for line in rows)
    assert "![validation accuracy per epoch of the finished runs](curves.png)" in report
