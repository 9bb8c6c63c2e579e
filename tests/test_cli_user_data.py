"""The command line on users' data: train (every model), predict, evaluate, search; errors."""

import csv
import json

import numpy as np
import pytest
import torch

from noisyrnn.cli import main
from noisyrnn.data import load_data_task
from noisyrnn.models import MODEL_NAMES
from noisyrnn.predict import TrainedRun, predict_proba


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """Multivariate, unequal-length sequences with string labels and a test part."""
    rng = np.random.default_rng(0)
    n, T, d = 48, 10, 3
    y = np.array(["calm", "tremor", "fall"] * (n // 3))
    X = rng.normal(size=(n, T, d)) * 2.0 + 1.0
    X[y == "tremor", :, 0] += 3.0
    X[y == "fall", :, 1] -= 3.0
    lengths = rng.integers(4, T + 1, size=n)
    path = tmp_path_factory.mktemp("data") / "sensors.npz"
    np.savez(path, X=X, y=y, lengths=lengths, X_test=X[:12], y_test=y[:12], lengths_test=lengths[:12])
    return path


def run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("model", [m for m in MODEL_NAMES])
def test_train_every_model_on_user_data(model, npz, tmp_path, capsys):
    rc, out, err = run(["train", "--data", str(npz), "--model", model, "--out", str(tmp_path / "run"),
                        "--epochs", "2", "--set", "params.hidden_size=8", "--no-progress"], capsys)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["model"] == model and summary["evaluated_on"] == "test"
    assert list(summary["test"]) == ["clean", "white_0.4", "white_0.8", "white_1.2", "mult_0.4", "mult_0.8", "mult_1.2"]
    settings = json.loads(err.split("noisyrnn: settings: ", 1)[1].splitlines()[0])
    assert settings["params"]["hidden_size"] == 8 and settings["train"]["epochs"] == 2
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["data"]["classes"] == ["calm", "fall", "tremor"]
    assert len(meta["data"]["normalization"]["mean"]) == 3


def test_predict_and_evaluate_read_the_checkpoint(npz, tmp_path, capsys):
    folder = tmp_path / "run"
    assert run(["train", "--data", str(npz), "--model", "nrnn", "--out", str(folder), "--epochs", "3",
                "--set", "params.hidden_size=8", "--no-progress"], capsys)[0] == 0
    rc, out, err = run(["predict", str(folder), "--data", str(npz), "--out", str(tmp_path / "p.csv")], capsys)
    assert rc == 0, err
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 12 and set(rows[0]) == {"index", "predicted", "label", "prob_calm", "prob_fall",
                                                 "prob_tremor"}
    # the same probabilities as the model applied to the task's (normalised) test split
    trained = TrainedRun.load(folder)
    task = load_data_task(npz)
    expected = predict_proba(trained.model, task.test)
    got = torch.tensor([[float(r[f"prob_{c}"]) for c in ("calm", "fall", "tremor")] for r in rows])
    assert torch.allclose(got, expected, atol=1e-5)
    assert [r["predicted"] for r in rows] == [trained.classes[i] for i in expected.argmax(-1).tolist()]
    rc, out, err = run(["evaluate", str(folder), "--data", str(npz), "--columns", "clean", "white_0.4",
                        "--out", str(tmp_path / "ev")], capsys)
    assert rc == 0, err
    report = json.loads((tmp_path / "ev" / "robustness.json").read_text())
    assert set(report["accuracy"]) == {"clean", "white_0.4"} and report["scale"]["normalized"]
    preds = [r["predicted"] for r in rows]
    assert report["accuracy"]["clean"] == pytest.approx(np.mean([p == r["label"] for p, r in zip(preds, rows)]))
    assert (tmp_path / "ev" / "robustness.png").stat().st_size > 1000
    assert "standard deviation" in (tmp_path / "ev" / "report.md").read_text()


def test_search_picks_on_validation(npz, tmp_path, capsys):
    rc, out, err = run(["search", "--data", str(npz), "--model", "lipschitz", "--out", str(tmp_path / "s"),
                        "--grid", "params.step=0.05,0.2", "params.hidden_size=8", "--epochs", "2",
                        "--select-under", "white_0.4", "--folds", "1", "--no-progress"], capsys)
    assert rc == 0, err
    best = json.loads((tmp_path / "s" / "best.json").read_text())
    scores = {c["run"]: c["score"] for c in best["candidates"]}
    assert len(scores) == 2 and best["best"]["score"] == max(scores.values())
    for c in best["candidates"]:  # the score is the validation accuracy under white_0.4
        rec = json.loads((tmp_path / "s" / "runs" / c["run"] / "seed0" / "result.json").read_text())
        assert c["score"] == rec["validation"]["white_0.4"]


def test_search_refit_trains_the_winner_on_every_labelled_sequence(npz, tmp_path, capsys):
    rc, out, err = run(["search", "--data", str(npz), "--model", "lipschitz", "--out", str(tmp_path / "s"),
                        "--grid", "params.step=0.05,0.2", "params.hidden_size=8", "--epochs", "2", "--folds", "1",
                        "--refit", "--no-progress"], capsys)
    assert rc == 0, err
    best = json.loads((tmp_path / "s" / "best.json").read_text())
    assert json.loads(out[out.index("{\n"):])["refit"] == best["refit"] and len(best["refit"]["runs"]) == 1
    folder = tmp_path / "s" / "refit" / "runs" / "lipschitz" / "seed0"
    assert best["refit"]["runs"] == [str(folder)]
    meta = json.loads((folder / "model.json").read_text())
    chosen = best["best"]["config"]
    assert meta["model"]["params"] == chosen["params"]  # the winner's hyperparameters, unchanged
    assert meta["train_config"]["select"] == "last" and meta["train_config"]["lr"] == chosen["train"]["lr"]
    assert json.loads((folder / "result.json").read_text())["best_epoch"] == 1  # the last of 2 epochs
    # z-scored with statistics of all 48 labelled sequences (training + validation), not the 80% split
    data = np.load(npz)
    X, lengths = data["X"], data["lengths"]
    valid = np.concatenate([X[i, :lengths[i]] for i in range(len(X))])
    assert np.allclose(meta["data"]["normalization"]["mean"], valid.mean(axis=0), atol=1e-5)
    rc, _, err = run(["predict", str(folder), "--data", str(npz), "--out", str(tmp_path / "p.csv")], capsys)
    assert rc == 0, err
    rc, _, err = run(["search", "--task", "ecg", "--model", "lstm", "--out", str(tmp_path / "e"), "--grid",
                      "train.lr=0.001", "--epochs", "1", "--refit", "--no-progress"], capsys)
    assert rc == 2 and "refit applies to user data" in err, err
    assert not (tmp_path / "e").exists()  # refused before any training


def test_select_under_changes_the_selection_key(npz, tmp_path, capsys):
    rc, out, err = run(["train", "--data", str(npz), "--model", "lipschitz", "--out", str(tmp_path / "r"),
                        "--epochs", "3", "--set", "params.hidden_size=8", "--select-under", "white_0.8",
                        "--no-progress"], capsys)
    assert rc == 0, err
    history = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    best = max(range(3), key=lambda i: (history[i]["val_under"], history[i]["val_accuracy"], -history[i]["val_loss"]))
    assert json.loads(out)["best_epoch"] == best


@pytest.mark.parametrize("argv,needle", [
    (["train", "--data", "/no/such.npz", "--out", "OUT"], "data path does not exist: /no/such.npz"),
    (["train", "--data-dir", "/no/such/dir", "--out", "OUT"], "data directory does not exist: /no/such/dir"),
    (["train", "--task", "ucr:NoSuchSet", "--out", "OUT"], "'NoSuchSet' not found offline"),
    (["train", "--task", "nope", "--out", "OUT"], "unknown task 'nope'"),
    (["train", "--data", "DATA", "--task", "ecg", "--out", "OUT"], "either --data PATH or --task NAME"),
    (["train", "--data", "DATA", "--model", "lstm", "--set", "params.step=0.1", "--out", "OUT"],
     "unknown parameter 'step' for model 'lstm'"),
    (["train", "--data", "DATA", "--select-under", "blur_3", "--out", "OUT"], "unknown perturbation column"),
    (["predict", "/no/run", "--data", "DATA", "--out", "OUT/p.csv"], "run folder /no/run does not exist"),
])
def test_cli_errors_name_the_fault_and_write_nothing(argv, needle, npz, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(npz) if a == "DATA" else a for a in argv]
    rc, out, err = run(argv, capsys)
    assert rc == 2 and err.startswith("noisyrnn: error: ") and needle in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "OUT").exists()


def test_no_prefix_matching(npz, tmp_path, capsys):
    """`--data-d` must not be read as --data-dir, nor --dat as --data."""
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dat", str(npz), "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    assert "unrecognized arguments: --dat" in capsys.readouterr().err


def test_bad_data_files_exit_2(tmp_path, capsys):
    bad = tmp_path / "ragged.csv"
    bad.write_text("1,0.1,0.2\n2,0.3\n")
    rc, out, err = run(["train", "--data", str(bad), "--out", str(tmp_path / "r")], capsys)
    assert rc == 2 and "row 2 has 2 fields" in err and str(bad) in err
    assert not (tmp_path / "r").exists()


def test_search_over_several_validation_splits(npz, tmp_path, capsys):
    rc, out, err = run(["search", "--data", str(npz), "--model", "lstm", "--out", str(tmp_path / "s"),
                        "--grid", "train.lr=0.001,0.01", "params.hidden_size=8", "--epochs", "2", "--splits", "2",
                        "--no-progress"], capsys)
    assert rc == 0, err
    best = json.loads((tmp_path / "s" / "best.json").read_text())
    assert best["splits"] == 2
    for c in best["candidates"]:  # the score averages the two splits' validation accuracies
        vals = [json.loads((tmp_path / "s" / f"split{k}" / "runs" / c["run"] / "seed0" / "result.json").read_text())
                ["validation"]["clean"] for k in (0, 1)]
        assert c["score"] == pytest.approx(sum(vals) / 2)
    # the two splits hold out different sequences
    a = load_data_task(npz, seed=0)
    b = load_data_task(npz, seed=1)
    assert not torch.equal(a.val.x, b.val.x)


def test_search_k_fold_averages_folds_that_partition_the_training_part(npz, tmp_path, capsys):
    """Validation holds fewer than 50 sequences: the search runs K folds by default; each candidate's
    score is the mean of its folds' validation accuracies, and the folds' validation parts are
    disjoint, stratified and cover the training part."""
    rc, out, err = run(["search", "--data", str(npz), "--model", "lstm", "--out", str(tmp_path / "s"),
                        "--grid", "train.lr=0.001,0.01", "params.hidden_size=8", "--epochs", "2",
                        "--no-progress"], capsys)
    assert rc == 0, err
    best = json.loads((tmp_path / "s" / "best.json").read_text())
    assert best["folds"] == 5 and best["splits"] == 1 and len(best["candidates"]) == best["n_candidates"] == 2
    for c in best["candidates"]:
        vals = [json.loads((tmp_path / "s" / f"fold{k}" / "runs" / c["run"] / "seed0" / "result.json").read_text())
                ["validation"]["clean"] for k in range(5)]
        assert c["score"] == pytest.approx(sum(vals) / 5)
    full = load_data_task(npz, normalize=False)
    pooled = torch.cat([full.train.x, full.val.x]).sum(dim=(1, 2))
    held_out = []
    for k in range(5):
        t = load_data_task(npz, normalize=False, fold=(k, 5))
        assert len(t.val) + len(t.train) == len(pooled)
        counts = torch.bincount(t.val.y, minlength=3)
        assert int(counts.max() - counts.min()) <= 1  # stratified: 16 per class over 5 folds
        held_out.append(t.val.x.sum(dim=(1, 2)))
    assert torch.equal(torch.cat(held_out).sort().values, pooled.sort().values)  # each sequence validates once


def test_search_candidates_is_a_seeded_random_subset(npz, tmp_path, capsys):
    grid = ["--grid", "train.lr=0.001,0.003,0.01", "params.step=0.05,0.2", "params.hidden_size=8"]
    for out in ("a", "b"):
        rc, _, err = run(["search", "--data", str(npz), "--model", "lipschitz", "--out", str(tmp_path / out), *grid,
                          "--epochs", "1", "--folds", "1", "--candidates", "2", "--no-progress"], capsys)
        assert rc == 0, err
    a, b = (json.loads((tmp_path / o / "best.json").read_text()) for o in ("a", "b"))
    assert a["candidates"] and len(a["candidates"]) == 2 == len({c["run"] for c in a["candidates"]})
    assert [c["run"] for c in a["candidates"]] == [c["run"] for c in b["candidates"]]
    assert len(list((tmp_path / "a" / "runs").iterdir())) == 2


@pytest.mark.parametrize("argv, message", [
    (["--folds", "0"], "folds must be >= 2"), (["--folds", "3", "--splits", "2"], "not both"),
    (["--folds", "20"], "fewer than the 20 folds"), (["--candidates", "0"], "candidates must be >= 1")])
def test_search_validation_options_refused_clearly(npz, tmp_path, capsys, argv, message):
    rc, _, err = run(["search", "--data", str(npz), "--model", "lstm", "--out", str(tmp_path / "s"),
                      "--grid", "train.lr=0.001", "--epochs", "1", "--no-progress", *argv], capsys)
    assert rc == 2 and message in err, err


def test_analyze_multivariate_unequal_length_checkpoint(npz, tmp_path, capsys):
    folder = tmp_path / "run"
    assert run(["train", "--data", str(npz), "--model", "nrnn", "--out", str(folder), "--epochs", "2",
                "--set", "params.hidden_size=6", "--no-progress"], capsys)[0] == 0
    rc, out, err = run(["analyze", str(folder), "--data", str(npz), "--out", str(tmp_path / "an"), "--samples", "6",
                        "--lanczos-steps", "3", "--trace-probes", "2", "--hessian-samples", "8", "--no-progress"],
                       capsys)
    assert rc == 0, err
    analysis = json.loads(next((tmp_path / "an" / "runs").rglob("analysis.json")).read_text())
    margins = analysis["margin"]
    assert margins["bound_below_empirical"] == margins["correct"]  # eq (16) lies below the empirical margin
    assert len(analysis["hessian"]["top_eigenvalues"]) >= 1


def test_paper_tasks_train_any_model_with_its_defaults(tmp_path, capsys):
    """`train --task ecg --model lstm` used to fail with "no config for model"."""
    rc, out, err = run(["train", "--task", "ecg", "--model", "lstm", "--out", str(tmp_path / "r"), "--epochs", "1",
                        "--set", "params.hidden_size=8", "--no-progress"], capsys)
    assert rc == 0, err
    summary = json.loads(out)
    assert "fgsm_0.05" not in summary["test"] and set(summary["test"]) >= {"clean", "white_1.2", "mult_1.2"}
    rc, out, err = run(["train", "--task", "ecg", "--model", "nrnn", "--recipe", "--out", str(tmp_path / "q"),
                        "--epochs", "1", "--no-progress"], capsys)
    assert rc == 0, err
    recipe = json.loads(out)["settings"]
    assert recipe["params"]["add_noise"] == 0.06 and recipe["train"]["lr_milestones"] == [54]


def test_a_models_own_search_space_is_searched_by_sixteen_seeded_points(npz):
    """The default space (noise level, step, lr, hidden size, weight decay: 48 points for the NRNN)
    is searched by DEFAULT_CANDIDATES random points, the same ones every time, in grid order."""
    from noisyrnn.experiments.search import DEFAULT_CANDIDATES, SEARCH_SPACES, subset
    from noisyrnn.experiments.sweep import parse_sweep

    space = SEARCH_SPACES["nrnn"]
    assert {"params.hidden_size", "train.weight_decay"} <= set(space)
    sweep = parse_sweep({"task": f"file:{npz}", "models": ["nrnn"], "grid": space})
    assert len(sweep.runs) == 48
    a, b = subset(sweep, DEFAULT_CANDIDATES), subset(sweep, DEFAULT_CANDIDATES)
    names = [r.name for r in a.runs]
    assert len(names) == 16 == len(set(names)) and names == [r.name for r in b.runs]
    order = [r.name for r in sweep.runs]
    assert [order.index(n) for n in names] == sorted(order.index(n) for n in names)
    assert subset(sweep, None) is sweep and subset(sweep, 100) is sweep
