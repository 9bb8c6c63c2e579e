"""n_members: seed ensembles trained seed-batched, their probabilities averaged; member 0 is
the single-model run of the same seed; the CLI's predict, evaluate, stream and export and the
estimators take them."""

import io
import sys

import numpy as np
import pytest
import torch

from noisyrnn import NRNNClassifier, build_model
from noisyrnn.cli import main
from noisyrnn.data import load_data_task
from noisyrnn.errors import ConfigError
from noisyrnn.models.averaged import AveragedMembers, member_seeds
from noisyrnn.predict import TrainedRun
from noisyrnn.training import TrainConfig, train_model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    n, T = 36, 12
    y = np.array(["up", "down", "flat"] * (n // 3))
    X = rng.normal(size=(n, T, 2)) + np.where(y == "up", 1.0, np.where(y == "down", -1.0, 0.0))[:, None, None]
    path = tmp_path_factory.mktemp("d") / "d.npz"
    np.savez(path, X=X, y=y, lengths=rng.integers(5, T + 1, size=n), X_test=X[:9], y_test=y[:9])
    return path


@pytest.mark.parametrize("name", ["nrnn", "cornn", "lstm"])
def test_the_average_is_the_mean_of_the_members_probabilities(name):
    torch.manual_seed(0)
    members = [build_model(name, 2, 3, seed=s, hidden_size=8).eval() for s in range(3)]
    avg = AveragedMembers(members)
    x, lengths = torch.randn(5, 9, 2), torch.tensor([9, 3, 5, 9, 1])
    with torch.no_grad():
        want = torch.stack([torch.softmax(m(x, lengths=lengths), -1) for m in members]).mean(0)
        got = torch.softmax(avg(x, lengths=lengths), -1)
        assert torch.allclose(got, want, atol=1e-6)
        state = avg.init_state(5)  # streaming: the members' states side by side
        for a in range(0, 9, 4):
            out, state = avg.step(x[:, a:a + 4], state, lengths=(lengths - a).clamp(0, 4))
        assert torch.allclose(torch.softmax(out, -1), want, atol=1e-5)
    with pytest.raises(ConfigError, match="at least two models of one architecture"):
        AveragedMembers([members[0], build_model(name, 2, 3, seed=0, hidden_size=6)])


def test_members_are_the_single_runs_of_their_seeds(data):
    task = load_data_task(data)
    config = TrainConfig.from_dict({"epochs": 2, "seed": 5})
    both = train_model("nrnn", {"hidden_size": 8}, task, config, progress=False, n_members=2)
    assert member_seeds(5, 2) == [5, 100_008]
    for i, seed in enumerate(member_seeds(5, 2)):
        alone = train_model("nrnn", {"hidden_size": 8}, task, TrainConfig.from_dict({"epochs": 2, "seed": seed}),
                            progress=False)
        with torch.no_grad():
            assert torch.allclose(both.members[i].model(task.test.x, lengths=task.test.lengths),
                                  alone.model(task.test.x, lengths=task.test.lengths), atol=1e-5)


def test_cli_trains_a_seed_ensemble_and_every_command_reads_it(data, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--model", "nrnn", "--out", str(run), "--epochs", "2",
            "--set", "params.hidden_size=8", "--n-members", "3", "--no-progress"]
    assert main(argv) == 0
    trained = TrainedRun.load(run)
    assert isinstance(trained.model, AveragedMembers) and trained.model.n_members == 3
    assert sorted(p.name for p in (run / "members").iterdir()) == ["0", "1", "2"]
    assert main(argv) == 0  # finished: resumes with nothing left to train
    assert main(["predict", str(run), "--data", str(data), "--out", str(tmp_path / "p.csv")]) == 0
    assert main(["evaluate", str(run), "--data", str(data), "--out", str(tmp_path / "ev")]) == 0
    stdin, sys.stdin = sys.stdin, io.StringIO("0.1,0.2\n0.3,-0.1\n")
    try:
        assert main(["stream", str(run)]) == 0
    finally:
        sys.stdin = stdin
    capsys.readouterr()
    ort = pytest.importorskip("onnxruntime")
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    task = load_data_task(data)
    x = task.test.x
    L = task.test.lengths if task.test.lengths is not None else torch.full((len(x),), x.shape[1])
    raw = x * torch.tensor(trained.normalization.std) + torch.tensor(trained.normalization.mean)
    with torch.no_grad():
        want = torch.softmax(trained.model(x, lengths=L), -1).numpy()
    got = session.run(None, {"x": raw.numpy(), "lengths": L.numpy(),
                             "state": np.zeros((len(x), trained.model.state_size), dtype=np.float32)})[1]
    assert np.abs(got - want).max() < 1e-5
    assert main(argv[:-3] + ["--n-members", "0"]) == 2
    assert main(["analyze", str(run), "--data", str(data), "--out", str(tmp_path / "an")]) == 2
    assert "seed ensemble" in capsys.readouterr().err


def test_estimator_with_members_averages_and_round_trips(data, tmp_path):
    task = load_data_task(data, normalize=False)
    X, y = task.train.x.numpy(), np.array([task.classes[i] for i in task.train.y])
    est = NRNNClassifier(params={"hidden_size": 8}, epochs=2, n_members=2, random_state=1).fit(X, y)
    assert isinstance(est.model_, AveragedMembers)
    proba = est.predict_proba(X[:6])
    assert np.allclose(proba.sum(1), 1.0)
    est.save(tmp_path / "est")
    again = NRNNClassifier.load(tmp_path / "est")
    assert again.n_members == 2 and np.allclose(again.predict_proba(X[:6]), proba)
    with pytest.raises(ValueError, match="n_members must be an integer >= 1"):
        NRNNClassifier(n_members=0, epochs=1).fit(X, y)
