"""benchmarks/bench_user_data.py: the fair-baseline benchmark runs end to end on a dataset aeon
ships (tiny settings) and writes its report and bake-off CSV; its noisy copies are reproducible."""

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def test_noisy_copies_are_seeded_and_leave_padding_alone():
    from bench_user_data import COPIES, _augmented

    x = torch.randn(4, 6, 2)
    lengths = torch.tensor([6, 2, 4, 6])
    y = torch.tensor([0, 1, 0, 1])
    a, ya = _augmented(x, y, lengths, (0.4, 0.8), seed=3)
    b, _ = _augmented(x, y, lengths, (0.4, 0.8), seed=3)
    assert torch.equal(a, b) and len(a) == 4 * (1 + 2 * COPIES) and torch.equal(ya[:4], y)
    assert torch.equal(a[:4], x)  # the clean set first
    copy = a[4:8]
    assert torch.equal(copy[1, 2:], x[1, 2:]) and not torch.equal(copy[1, :2], x[1, :2])


@pytest.mark.slow
def test_benchmark_runs_end_to_end(tmp_path):
    pytest.importorskip("aeon")
    from conftest import run_script

    run_script("benchmarks/bench_user_data.py", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"),
               "--datasets", "GunPoint", "--candidates", "1", "--epochs", "1", "--threads", "1",
               "--rows", "nrnn + aug", "nrnn + aug + windows, 5 members", "nrnn + aug + windows + batch auto",
               "nrnn + aug + windows + refit", timeout=900)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = results["datasets"]["GunPoint"]
    assert set(rows) == {"nrnn + aug", "nrnn + aug + windows, 5 members", "nrnn + aug + windows + batch auto",
                         "nrnn + aug + windows + refit", "minirocket", "minirocket + aug",
                         "minirocket + aug 0.4+0.8 (fixed)"}
    refit = rows["nrnn + aug + windows + refit"]
    assert refit["refit"] and refit["config"]["train"]["select"] == "last"
    store = tmp_path / "work" / "GunPoint" / "nrnn_aug_windows_refit" / "nrnn"
    assert json.loads((store / "sweep.json").read_text())["task_options"] == {"val_fraction": 0}
    runs = list(store.rglob("result.json"))
    assert len(runs) == 5 and all(json.loads(p.read_text())["best_epoch"] == 0 for p in runs)  # the last of 1
    assert rows["nrnn + aug + windows + batch auto"]["config"]["train"]["batch_size"] == "auto"
    assert rows["nrnn + aug"]["config"]["train"]["batch_size"] == 32
    assert rows["minirocket + aug"]["chosen"] in ("none", "0.4", "0.8", "0.4+0.8")
    with open(tmp_path / "out" / "bakeoff.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 7 * 5 and {r["classifier"] for r in table} == set(rows)
    assert "## Targets" in (tmp_path / "out" / "report.md").read_text()
    assert "| GunPoint | nrnn + aug + windows, 5 members |" in (tmp_path / "out" / "summary.md").read_text()
    (tmp_path / "out" / "report.md").unlink()
    run_script("benchmarks/bench_user_data.py", "--out", str(tmp_path / "out"), "--render")
    assert "## Targets" in (tmp_path / "out" / "report.md").read_text()
