"""Training, checkpoints, resume, determinism and input validation."""

import json

import pytest
import torch

from noisyrnn import build_model
from noisyrnn.data import load_task
from noisyrnn.data.task import Split, Task
from noisyrnn.errors import ConfigError, DataError, InputError
from noisyrnn.evaluation import evaluate
from noisyrnn.training import TrainConfig, fit, load_model, train_model


@pytest.fixture(scope="module")
def ecg():
    return load_task("ecg")


def tiny_task(n=64, T=10, seed=0):
    """Sign of the mean of a noisy sequence: learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    def make(k):
        y = torch.randint(0, 2, (k,), generator=g)
        x = torch.randn(k, T, 1, generator=g) + (2.0 * y - 1.0).view(-1, 1, 1)
        return Split(x, y)
    return Task("tiny", make(n), make(n), make(n), num_classes=2)


def test_short_ecg_training_beats_majority_rate(ecg):
    cfg = TrainConfig(epochs=6, batch_size=32, lr=0.003, lr_milestones=[], seed=0)
    res = train_model("nrnn", {"step": 0.1, "mult_noise": 0.03, "add_noise": 0.06}, ecg, cfg, progress=False)
    acc = evaluate(res.model, ecg.test)["accuracy"]
    assert acc > 0.85 > ecg.majority_rate("test") + 0.25


def test_training_is_deterministic_given_seed():
    task = tiny_task()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.01, seed=3)
    a = train_model("nrnn", {"hidden_size": 8, "add_noise": 0.1}, task, cfg, progress=False)
    b = train_model("nrnn", {"hidden_size": 8, "add_noise": 0.1}, task, cfg, progress=False)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k


def test_checkpoint_round_trip(tmp_path):
    task = tiny_task()
    res = train_model("lipschitz", {"hidden_size": 8}, task, TrainConfig(epochs=2, batch_size=16), out_dir=tmp_path,
                      progress=False)
    model, meta = load_model(tmp_path)
    assert meta["best_epoch"] == res.best_epoch
    x = task.test.x
    assert torch.equal(model(x), res.model(x))
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pt"))
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in log] == [0, 1]


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    task = tiny_task()
    train_model("lipschitz", {"hidden_size": 8}, task, TrainConfig(epochs=1), out_dir=tmp_path, progress=False)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt"):
        load_model(tmp_path)


def test_bad_inputs_are_named():
    model = build_model("nrnn", 1, 2, hidden_size=4)
    with pytest.raises(InputError, match="shape"):
        model(torch.randn(3, 5))
    with pytest.raises(InputError, match="input_size=1"):
        model(torch.randn(3, 5, 2))
    x = torch.randn(3, 5, 1)
    x[1, 2, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        model(x)
    with pytest.raises(InputError, match="floating-point"):
        model(torch.ones(3, 5, 1, dtype=torch.long))


def test_unknown_options_are_named():
    with pytest.raises(ConfigError, match="unknown model 'nosuch'"):
        build_model("nosuch", 1, 2)
    with pytest.raises(ConfigError, match="unknown parameter 'hiden_size'"):
        build_model("nrnn", 1, 2, hiden_size=3)
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="unknown noise setting .gaussian."):
        build_model("nrnn", 1, 2, noise="gaussian")
    with pytest.raises(ConfigError, match="lr must be"):
        TrainConfig.from_dict({"lr": -1})


def test_initialisation_is_seeded_explicitly_and_leaves_the_global_rng_alone():
    import torch

    from noisyrnn import build_model

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_model("cornn", 2, 3, hidden_size=6, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    b = build_model("cornn", 2, 3, hidden_size=6, seed=7)
    c = build_model("cornn", 2, 3, hidden_size=6, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(7)
    legacy = build_model("cornn", 2, 3, hidden_size=6)  # seed=s equals seeding the global RNG with s
    for k, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[k], v) and torch.equal(legacy.state_dict()[k], v)
    assert any(not torch.equal(c.state_dict()[k], v) for k, v in a.state_dict().items())
