"""Regression: real-valued targets through the same training loop (MSE on z-scored targets,
selection on validation MSE), `noisyrnn train` on regression files (.npz with --regression, the
regression .ts files aeon ships) reporting RMSE and MAE clean and under input noise, `predict`
in the targets' units, and the per-step head."""

import json

import numpy as np
import pytest
import torch

from noisyrnn import task_from_arrays
from noisyrnn.cli import main
from noisyrnn.errors import ConfigError, InputError
from noisyrnn.evaluation import regression_errors
from noisyrnn.models import build_regressor
from noisyrnn.training import TrainConfig, train_model


def series(n=160, T=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, 2))
    y = 4 * X[:, :12, 0].mean(1) - 2 * X[:, -6:, 1].mean(1) + 7
    return X, y


def test_training_loop_minimises_the_mse_and_reports_in_the_targets_units():
    X, y = series()
    task = task_from_arrays(X[:120], y[:120], X[120:], y[120:], regression=True)
    assert task.regression and task.num_outputs == 1 and task.train.y.dtype == torch.float32
    assert abs(float(task.train.y.mean())) < 1e-5  # z-scored with the training split's statistics
    result = train_model("nrnn", {"hidden_size": 16}, task, TrainConfig(epochs=40, lr=0.01), progress=False)
    history = result.history
    assert history[-1]["val_rmse"] < 0.6 * history[0]["val_rmse"]
    assert {"train_rmse", "val_loss", "val_rmse", "val_mae"} <= set(history[-1])
    best = min(range(len(history)), key=lambda e: history[e]["val_loss"])
    assert result.best_epoch == best  # selected on validation MSE
    errors = regression_errors(result.model, task.test, ["clean", "white_0.8"],
                               target_normalization=task.target_normalization)
    with torch.no_grad():  # the same RMSE by hand, in y's units
        pred = result.model(task.test.x).squeeze(-1) * task.target_normalization.std[0] + task.target_normalization.mean[0]
    assert errors["clean"]["rmse"] == pytest.approx(float(np.sqrt(np.mean((pred.numpy() - y[120:]) ** 2))), rel=1e-5)
    assert errors["clean"]["rmse"] < 0.6 * y[120:].std() < errors["white_0.8"]["rmse"] * 2


def test_per_step_head_gives_an_output_at_every_real_step():
    model = build_regressor("cornn", 2, 3, per_step=True, seed=0, hidden_size=8)
    x = torch.randn(4, 9, 2)
    out = model(x, lengths=torch.tensor([9, 3, 5, 9]))
    assert out.shape == (4, 9, 3)
    assert torch.all(out[1, 3:] == 0) and torch.any(out[1, :3] != 0)
    last = build_regressor("cornn", 2, 3, seed=0, hidden_size=8)(x)
    assert torch.allclose(model(x)[:, -1], last, atol=1e-6)  # the same weights: last step = sequence head


def test_cli_trains_on_regression_npz_and_predicts_in_the_targets_units(tmp_path, capsys):
    X, y = series()
    np.savez(tmp_path / "r.npz", X=X[:120], y=y[:120], X_test=X[120:], y_test=y[120:])
    assert main(["train", "--data", str(tmp_path / "r.npz"), "--regression", "--model", "nrnn", "--epochs", "15",
                 "--set", "params.hidden_size=16", "train.lr=0.01", "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary["test"]) == ["clean", "white_0.4", "white_0.8", "white_1.2", "mult_0.4", "mult_0.8",
                                     "mult_1.2"]
    assert set(summary["test"]["clean"]) == {"rmse", "mae"}
    assert main(["predict", str(tmp_path / "run"), "--data", str(tmp_path / "r.npz"),
                 "--out", str(tmp_path / "p.csv")]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert pred["rmse"] == pytest.approx(summary["test"]["clean"]["rmse"], rel=1e-5)
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "index,prediction" and len(rows) == 41
    assert abs(np.mean([float(r.split(",")[1]) for r in rows[1:]]) - 7) < 2  # y's units (mean 7)
    for command in (["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")],):
        assert main(command) == 2
        assert "regression model" in capsys.readouterr().err


def test_cli_trains_on_a_regression_ts_file_that_aeon_ships(tmp_path, capsys):
    """Covid3Month (aeon's shipped regression .ts, @targetLabel true) needs no flag."""
    pytest.importorskip("aeon")
    assert main(["train", "--task", "ucr:Covid3Month", "--model", "lipschitz", "--epochs", "3", "--set",
                 "params.hidden_size=8", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["evaluated_on"] == "test" and summary["test"]["clean"]["rmse"] > 0
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["data"]["regression"] is True and meta["model"]["head"] == "regression"


@pytest.mark.parametrize("make,error,message", [
    (lambda X, y: task_from_arrays(X, np.where(y > 7, "a", "b").astype(object), regression=True), InputError,
     "regression targets must be numbers"),
    (lambda X, y: task_from_arrays(X, np.stack([y, y], 1)), InputError, "for real-valued targets use regression"),
    (lambda X, y: task_from_arrays(X, np.where(np.arange(len(y)) == 3, np.nan, y), regression=True), InputError,
     "target of sequence 3 is NaN or infinite"),
    (lambda X, y: build_regressor("lstm", 2, 1), ConfigError, "model 'lstm' has no regression head"),
])
def test_bad_regression_inputs_name_the_problem(make, error, message):
    X, y = series(40)
    with pytest.raises(error, match=message):
        make(X, y)
