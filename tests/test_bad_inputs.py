"""Every bad input of the reliability issue: one `noisyrnn: error:` line, exit 2, nothing written
(command line); a NoisyRNNError/ValueError naming the setting (Python API)."""

import json
import os

import numpy as np
import pytest

from noisyrnn import NRNNClassifier
from noisyrnn.cli import main
from noisyrnn.errors import ConfigError, DataError, NoisyRNNError
from noisyrnn.memory import MemoryBudgetExceeded, evaluation_batch, memory_budget, parse_size


def files(folder):
    """Every file and its mtime, but the lock files (they record who last owned a folder)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")
            if p.is_file() and p.name not in (".lock", ".claim")}


def npz(path, n=40, T=12, d=1, labels=None, complex_=False):
    rng = np.random.default_rng(0)
    y = np.asarray(labels) if labels is not None else np.array(["a", "b"] * (n // 2))
    X = rng.normal(size=(len(y), T, d))
    if complex_:
        X = X + 1j * rng.normal(size=X.shape)
    np.savez(path, X=X, y=y)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 1-epoch run on a small .npz (copied per test before it is tampered with)."""
    root = tmp_path_factory.mktemp("trained")
    data = npz(root / "d.npz")
    assert main(["train", "--data", str(data), "--model", "nrnn", "--out", str(root / "r"), "--epochs", "1",
                 "--set", "params.hidden_size=4", "--no-progress"]) == 0
    return root


@pytest.fixture
def work(tmp_path, trained, monkeypatch, capsys):
    import shutil

    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    return tmp_path


def edit_json(path, change):
    meta = json.loads(open(path).read())
    change(meta)
    open(path, "w").write(json.dumps(meta))


TRAIN = ["train", "--data", "d.npz", "--model", "nrnn", "--out", "new", "--epochs", "1", "--no-progress"]


def _setup_toml_wrong_type(w):
    (w / "c.toml").write_text('model = "nrnn"\n[params]\nhidden_size = "8"\n')


def _setup_binary_toml(w):
    (w / "c.toml").write_bytes(bytes(range(256)))


def _setup_ts(w):
    rows = "".join(f"1,2,3,{i},5:{'abc'[i % 3]}\n" for i in range(12))
    (w / "d_TRAIN.ts").write_text("@problemName d\n@timeStamps false\n@univariate true\n@classLabel true a b\n@data\n"
                                  + rows)


def _setup_sweep_override(w):
    (w / "s.toml").write_text('data = "d.npz"\nmodels = ["lipschitz"]\n[overrides.lipschtz]\n"train.epochs" = 1\n')


def _setup_sweep_columns(w):
    (w / "s.toml").write_text('data = "d.npz"\nmodels = ["lipschitz"]\ncolumns = ["clean", "whte_0.4"]\n')


CASES = [  # (argv, set-up, the message's needle)
    (TRAIN + ["--set", "params.hidden_size=abc"], None, "params.hidden_size must be an integer >= 1, got 'abc'"),
    (TRAIN + ["--set", "params.hidden_size=8.5"], None, "params.hidden_size must be an integer >= 1, got 8.5"),
    (TRAIN + ["--set", "params.hidden_size=true"], None, "params.hidden_size must be an integer >= 1, got True"),
    (TRAIN + ["--set", "params.hidden_size=-5"], None, "params.hidden_size must be an integer >= 1, got -5"),
    (TRAIN + ["--set", "params.hidden_size=0"], None, "params.hidden_size must be an integer >= 1, got 0"),
    (TRAIN[:-3] + ["--set", "train.epochs=1e9"], None, "train.epochs must be an integer >= 1 and <= 1e+06"),
    (TRAIN[:-3] + ["--set", "train.epochs=2.5"], None, "train.epochs must be an integer"),
    (TRAIN + ["--set", "train.lr_milestones=1"], None, "train.lr_milestones must be a list of epochs"),
    (TRAIN + ["--set", "train.lr_milestones=abc"], None, "train.lr_milestones must be a list of epochs"),
    (TRAIN + ["--set", "train.eval_batch_size=0"], None, "train.eval_batch_size must be an integer >= 1"),
    (["train", "--data", "d.npz", "--config", "c.toml", "--out", "new", "--no-progress"], _setup_toml_wrong_type,
     "params.hidden_size must be an integer >= 1, got '8'"),
    (["train", "--data", "d.npz", "--config", "c.toml", "--out", "new", "--no-progress"], _setup_binary_toml,
     "is not valid TOML"),
    (["evaluate", "r", "--data", "d.npz", "--out", "ev"],
     lambda w: edit_json(w / "r/model.json", lambda m: m["data"].update(value_range="abc")),
     "'value_range' must be [min, max] of finite numbers"),
    (["predict", "r", "--data", "d.npz", "--out", "p"], lambda w: (w / "p").mkdir(), "--out p is a folder"),
    (["train", "--data", "d.npz", "--out", "f", "--epochs", "1"], lambda w: (w / "f").write_text("x"),
     "--out f is a file"),
    (["predict", "f", "--data", "d.npz", "--out", "p.csv"], lambda w: (w / "f").write_text("x"), "run path f is a file"),
    (["evaluate", "f", "--data", "d.npz"], lambda w: (w / "f").write_text("x"), "run path f is a file"),
    (TRAIN + ["--set", "params.hidden_size=4"], lambda w: npz(w / "d.npz", complex_=True), "holds complex numbers"),
    (["evaluate", "r", "--data", "d.npz", "--columns", "sp_2", "--out", "ev"], None,
     "salt and pepper's level is the share of values replaced, a number in [0, 1]"),
    (["train", "--data", "d_TRAIN.ts", "--out", "new", "--epochs", "1", "--no-progress"], _setup_ts,
     "label(s) 'c' are not declared in the header's @classLabel (a b)"),
    (["sweep", "s.toml", "--out", "store"], _setup_sweep_override, "[overrides.lipschtz] names a model the sweep does not run"),
    (["sweep", "s.toml", "--out", "store"], _setup_sweep_columns, "unknown perturbation column 'whte_0.4'"),
    (["predict", "r", "--data", "d.npz", "--out", "p.csv"],
     lambda w: edit_json(w / "r/model.json", lambda m: m.pop("data")), "has no 'data' entry"),
    (["predict", "r", "--data", "d.npz", "--out", "p.csv"],
     lambda w: edit_json(w / "r/model.json", lambda m: m["data"]["classes"].append("c")),
     "'classes' lists 3 label(s) but the model's decoder has 2 outputs"),
    (["predict", "r", "--data", "d.npz", "--out", "p.csv"],
     lambda w: edit_json(w / "r/model.json", lambda m: m["data"]["normalization"]["std"].append(1.0)),
     "'normalization' has 1 mean(s) and 2 std(s)"),
    (["predict", "r", "--data", "d.npz", "--out", "p.csv"],
     lambda w: edit_json(w / "r/model.json", lambda m: m["model"]["params"].update(hidden_size=5)),
     "do not fit the model model.json describes"),
    (["predict", "r", "--data", "d.npz", "--out", "p.csv"],
     lambda w: edit_json(w / "r/model.json", lambda m: m["model"]["params"].update(hidden_size=10**9)),
     "over the memory budget"),
    (TRAIN + ["--set", "params.hidden_size=30000"], None, "model 'nrnn' with hidden_size 30000 needs about"),
    (["train", "--data", "d.npz", "--model", "nrnn", "--out", "r", "--epochs", "1", "--set", "params.hidden_size=4",
      "--no-progress"], lambda w: npz(w / "d.npz", labels=["x", "y"] * 20),
     "holds a training run that is not this one: it was trained on other data"),
]


@pytest.mark.parametrize("argv,setup,needle", CASES, ids=[f"{i}-{c[0][0]}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, setup, needle, work, capsys):
    if setup is not None:
        setup(work)
    before = files(work)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.splitlines() if not line.startswith("noisyrnn: settings:")]
    assert len(lines) == 1 and lines[0].startswith("noisyrnn: error: ") and needle in lines[0], err
    assert files(work) == before  # nothing written, nothing touched


def test_long_sequences_are_refused_for_training_with_the_estimate(work, capsys, monkeypatch):
    monkeypatch.setenv("NOISYRNN_MEMORY_BUDGET", "1GiB")
    rng = np.random.default_rng(0)
    np.savez(work / "long.npz", X=rng.normal(size=(20, 200_000)), y=np.array([0, 1] * 10))
    rc = main(["train", "--data", "long.npz", "--out", "new", "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "sequences of 200000 steps needs about" in err and "over the memory budget of 1.0 GiB" in err
    assert not (work / "new").exists()


def test_prediction_batches_shrink_to_fit_the_budget_instead_of_refusing(work, capsys, monkeypatch):
    from noisyrnn.predict import TrainedRun

    model = TrainedRun.load(work / "r").model
    assert evaluation_batch(model, 200_000, 1000, budget=10**12) == 1000
    small = evaluation_batch(model, 200_000, 1000, budget=100 * 2**20)
    assert 1 <= small < 1000
    with pytest.raises(MemoryBudgetExceeded, match="one sequence of 200000 steps"):
        evaluation_batch(model, 200_000, 1000, budget=2**20)
    monkeypatch.setenv("NOISYRNN_MEMORY_BUDGET", "100MiB")
    rng = np.random.default_rng(0)
    np.savez(work / "long.npz", X=rng.normal(size=(20, 200_000)), y=np.array(["a", "b"] * 10))
    assert main(["predict", "r", "--data", "long.npz", "--out", "p.csv"]) == 0
    assert len((work / "p.csv").read_text().splitlines()) == 21


def test_memory_budget_rule():
    assert parse_size("8GiB") == 8 * 2**30 and parse_size("500MB") == 500 * 10**6
    assert memory_budget("0.5") == memory_budget(None) if "NOISYRNN_MEMORY_BUDGET" not in os.environ else True
    with pytest.raises(NoisyRNNError, match="NOISYRNN_MEMORY_BUDGET must be a size"):
        parse_size("lots")


@pytest.mark.parametrize("kwargs,needle", [
    ({"params": {"hidden_size": -5}}, "params.hidden_size must be an integer >= 1, got -5"),
    ({"epochs": 1.5}, "epochs must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"lr": -1.0}, "lr must be a finite number > 0"),
])
def test_estimator_refuses_bad_settings_at_fit(kwargs, needle):
    X, y = np.random.default_rng(0).normal(size=(20, 8)), [0, 1] * 10
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        NRNNClassifier(**{"epochs": 1, **kwargs}).fit(X, y)


@pytest.fixture(scope="module")
def saved_estimator(tmp_path_factory):
    folder = tmp_path_factory.mktemp("est") / "e"
    X, y = np.random.default_rng(0).normal(size=(20, 8)), [0, 1] * 10
    NRNNClassifier(epochs=1, params={"hidden_size": 4}).fit(X, y).save(folder)
    return folder


@pytest.mark.parametrize("change,needle", [
    (lambda s: s["params"].update(model="nosuch"), "unknown model 'nosuch'"),
    (lambda s: s["params"].update(model="lipschitz"), "the files do not belong together"),
    (lambda s: s["params"].update(params={"hidden_size": 6}), "the files do not belong together"),
    (lambda s: s.update(n_channels=3), "n_channels is 3 but the saved model takes 1"),
    (lambda s: s["classes"].append(2), "'classes' lists 3 label(s)"),
    (lambda s: s["params"].update(bogus=1), "unknown estimator parameter(s) bogus"),
])
def test_tampered_estimator_files_are_refused_on_load(saved_estimator, tmp_path, change, needle):
    import shutil

    folder = tmp_path / "e"
    shutil.copytree(saved_estimator, folder)
    edit_json(folder / "estimator.json", change)
    with pytest.raises(DataError) as info:
        NRNNClassifier.load(folder)
    assert needle in str(info.value)


def test_predict_compares_labels_by_value_as_evaluate_does(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    y = np.array([1, 2] * 20)
    np.savez("tr.npz", X=rng.normal(size=(40, 12, 1)) + (y - 1.5)[:, None, None] * 4, y=y)
    yt = np.array([1.0, 2.0] * 5)  # the same classes written as floats
    np.savez("te.npz", X=rng.normal(size=(10, 12, 1)) + (yt - 1.5)[:, None, None] * 4, y=yt)
    assert main(["train", "--data", "tr.npz", "--out", "r", "--epochs", "5", "--set", "params.hidden_size=8",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["predict", "r", "--data", "te.npz", "--out", "p.csv"]) == 0
    predicted = json.loads(capsys.readouterr().out)["accuracy"]
    assert main(["evaluate", "r", "--data", "te.npz", "--columns", "clean", "--out", "ev"]) == 0
    evaluated = json.loads(capsys.readouterr().out)["accuracy"]["clean"]
    assert predicted == evaluated > 0.5
