"""The command line and the reproduction pipeline end to end, on tiny configs."""

import json
import math

import pytest
import torch

from noisyrnn.cli import main
from noisyrnn.evaluation import perturbation_seed, robustness
from noisyrnn.experiments.configs import task_config
from noisyrnn.experiments.paper import COLUMNS
from noisyrnn.perturbations import AdditiveWhiteNoise, MultiplicativeWhiteNoise, parse_column
from noisyrnn.errors import ConfigError

TINY = """
model = "{model}"
[params]
hidden_size = 16
step = 0.1
[train]
epochs = 2
batch_size = 50
lr = 0.005
lr_milestones = []
"""


@pytest.fixture()
def tiny_configs(tmp_path):
    d = tmp_path / "configs"
    d.mkdir()
    for m in ("nrnn", "lipschitz"):
        (d / f"{m}.toml").write_text(TINY.format(model=m))
    return d


def test_reproduce_writes_table_figure_and_results(tmp_path, tiny_configs, capsys):
    out = tmp_path / "out"
    rc = main(["reproduce", "ecg", "--seeds", "2", "--models", "nrnn", "lipschitz", "--out", str(out),
               "--config-dir", str(tiny_configs), "--no-progress"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["task"] == "ecg" and set(res["models"]) == {"nrnn", "lipschitz"}
    for cols in res["models"].values():
        assert list(cols) == COLUMNS["ecg"]
        for stats in cols.values():
            assert stats["n"] == 2 and 0.0 <= stats["mean"] <= 1.0 and stats["std"] >= 0.0
    per_seed = res["meta"]["per_seed"]["nrnn"]
    clean = [per_seed[str(s)]["clean"] for s in (0, 1)]
    assert math.isclose(res["models"]["nrnn"]["clean"]["mean"], sum(clean) / 2)
    report = (out / "report.md").read_text()
    assert "| 97.7 | 97.5 | 96.3 | 92.6 | 97.7 | 97.3 | 96.5 |" in report  # paper's NRNN row beside ours
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for s in (0, 1):  # each run's record names its own seed, batched or not
        rec = json.loads((out / "runs" / "nrnn" / f"seed{s}" / "result.json").read_text())
        assert rec["seed"] == s and rec["config"]["train"]["seed"] == s

    # a second invocation reuses finished runs: nothing retrained, identical numbers
    mtime = (out / "runs" / "nrnn" / "seed0" / "model.safetensors").stat().st_mtime_ns
    assert main(["reproduce", "ecg", "--seeds", "2", "--models", "nrnn", "lipschitz", "--out", str(out),
                 "--config-dir", str(tiny_configs), "--no-progress"]) == 0
    assert (out / "runs" / "nrnn" / "seed0" / "model.safetensors").stat().st_mtime_ns == mtime
    assert json.loads((out / "results.json").read_text())["models"] == res["models"]

    # evaluate a saved checkpoint from the command line: same numbers as the run recorded
    capsys.readouterr()
    assert main(["evaluate", str(out / "runs" / "nrnn" / "seed0"), "--columns", "clean", "white_0.4"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy"]["clean"] == per_seed["0"]["clean"]
    assert printed["accuracy"]["white_0.4"] == per_seed["0"]["white_0.4"]


def test_train_command(tmp_path, tiny_configs, capsys):
    rc = main(["train", "--config", str(tiny_configs / "nrnn.toml"), "--out", str(tmp_path / "run"),
               "--epochs", "1", "--set", "params.add_noise=0.1", "--no-progress"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["best_epoch"] == 0 and set(summary["test"]) == set(COLUMNS["ecg"])
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["model"]["params"]["add_noise"] == 0.1


@pytest.mark.parametrize("argv,needle", [
    (["reproduce", "ecg", "--models", "nosuch", "--seeds", "1"], "no config for model 'nosuch'"),
    (["train", "--out", "x", "--set", "params.hiden_size=3"], "unknown parameter 'hiden_size'"),
    (["evaluate", "/nonexistent/ckpt"], "checkpoint file not found"),
    (["train", "--out", "x", "--data-dir", "/nonexistent", "--epochs", "1"], "data directory does not exist: /nonexistent"),
])
def test_cli_errors_are_one_clear_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("noisyrnn: error: ") and needle in err
    assert "Traceback" not in err


def test_cli_unknown_option_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "ecg", "--sedes", "3"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --sedes" in capsys.readouterr().err


def test_shipped_configs_load():
    for model in ("nrnn", "lipschitz"):
        cfg = task_config("ecg", model)
        assert cfg["model"] == model and cfg["params"]["hidden_size"] == 128
    assert task_config("ecg", "nrnn")["params"]["mult_noise"] == 0.03
    assert task_config("ecg", "nrnn")["params"]["add_noise"] == 0.06


def test_perturbation_statistics():
    x = torch.full((400, 50, 2), 2.0)
    g = torch.Generator().manual_seed(0)
    add = AdditiveWhiteNoise(0.8)(x, g) - x
    mult = MultiplicativeWhiteNoise(0.4)(x, g) / x
    n = x.numel()
    assert abs(add.mean().item()) < 6 * 0.8 / n**0.5 and abs(add.std().item() - 0.8) < 0.01
    assert abs(mult.mean().item() - 1.0) < 6 * 0.4 / n**0.5 and abs(mult.std().item() - 0.4) < 0.005
    assert parse_column("white_1.2") == AdditiveWhiteNoise(1.2)
    assert parse_column("clean") is None
    with pytest.raises(ConfigError, match="unknown perturbation column 'pink_0.1'"):
        parse_column("pink_0.1")


def test_perturbation_draws_do_not_depend_on_column_order():
    from noisyrnn import build_model
    from noisyrnn.data.task import Split

    torch.manual_seed(0)
    model = build_model("lipschitz", 1, 2, hidden_size=4)
    split = Split(torch.randn(30, 6, 1), torch.randint(0, 2, (30,)))
    a = robustness(model, split, ["white_0.4", "mult_0.8"], seed=1)
    b = robustness(model, split, ["mult_0.8", "white_0.4"], seed=1)
    assert a == b
    assert perturbation_seed(1, "white_0.4") != perturbation_seed(2, "white_0.4")


def test_allocator_tuning_only_when_asked_for(monkeypatch, tmp_path):
    import noisyrnn.runtime as runtime
    from noisyrnn.cli import main

    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append(1) or True)
    assert main(["report", str(tmp_path / "missing")]) == 2 and calls == []
    assert main(["--keep-freed-memory", "report", str(tmp_path / "missing")]) == 2 and calls == [1]


def test_allocator_tuning_reaches_the_local_pool_workers(monkeypatch):
    """--keep-freed-memory applies to the worker processes a local pool starts (their
    initializer), and only when asked for."""
    import torch

    import noisyrnn.runtime as runtime
    from noisyrnn.experiments.executors import _init_worker, make_executor

    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append(1) or True)
    threads = torch.get_num_threads()
    try:
        _init_worker(1, False)
        assert calls == [] and torch.get_num_threads() == 1
        _init_worker(1, True)
        assert calls == [1]
    finally:
        torch.set_num_threads(threads)
    assert make_executor("local", 2, threads=1, keep_freed_memory=True).keep_freed_memory
    assert not make_executor("local", 2, threads=1).keep_freed_memory
