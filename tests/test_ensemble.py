"""Seed batching: S models in one pass equal S separate runs with the same seeds."""

import pytest
import torch

from noisyrnn import build_model
from noisyrnn.data.task import Split, Task
from noisyrnn.ensemble import Ensemble
from noisyrnn.errors import ConfigError
from noisyrnn.training import TrainConfig, train_model
from noisyrnn.training import fit_ensemble


def tiny_task(n=48, T=10, seed=0):
    g = torch.Generator().manual_seed(seed)

    def make(k):
        y = torch.randint(0, 2, (k,), generator=g)
        return Split(torch.randn(k, T, 1, generator=g) + (2.0 * y - 1.0).view(-1, 1, 1), y)

    return Task("tiny", make(n), make(n), make(n), num_classes=2)


@pytest.mark.parametrize("name,params", [
    ("nrnn", {"hidden_size": 8, "mult_noise": 0.2, "add_noise": 0.1}),
    ("nrnn", {"hidden_size": 8, "noise": "sde", "sigma1": 0.3, "sigma2": 0.5, "learn_step": False, "step": 0.1}),
    ("lipschitz", {"hidden_size": 8}),
    ("cornn", {"hidden_size": 8, "noise": "research", "mult_noise": 0.1, "add_noise": 0.05}),
    ("exprnn", {"hidden_size": 8}),
    ("antisymmetric", {"hidden_size": 8, "noise": "sde", "sigma1": 0.2}),
    ("antisymmetric_gated", {"hidden_size": 8}),
    ("gru", {"hidden_size": 8}),
])
def test_ensemble_training_equals_separate_runs(name, params, tmp_path):
    task = tiny_task()
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.01, lr_milestones=[2])
    seeds = [0, 1, 5]
    together = fit_ensemble(name, params, task, cfg, seeds, out_dir=tmp_path / "ens",
                            member_dirs=[tmp_path / f"m{s}" for s in seeds], progress=False)
    for seed, res in zip(seeds, together):
        alone = train_model(name, params, task, TrainConfig(**{**cfg.to_dict(), "seed": seed}), progress=False)
        assert res.best_epoch == alone.best_epoch
        for k, v in alone.model.state_dict().items():
            assert torch.allclose(res.model.state_dict()[k], v, rtol=1e-4, atol=1e-6), (seed, k)
        assert [h["val_accuracy"] for h in res.history] == [h["val_accuracy"] for h in alone.history]


def test_ensemble_forward_matches_members():
    torch.manual_seed(0)
    models = [build_model("nrnn", 2, 3, hidden_size=6, add_noise=0.1) for _ in range(3)]
    ens = Ensemble(models)
    x = torch.randn(4, 7, 2)
    out = ens(x)
    for s, m in enumerate(models):
        assert torch.allclose(out[s], m(x), atol=1e-6)


def test_ensemble_rejects_mixed_architectures():
    with pytest.raises(ConfigError, match="one architecture"):
        Ensemble([build_model("cornn", 1, 2, hidden_size=4), build_model("cornn", 1, 2, hidden_size=5)])
    with pytest.raises(ConfigError, match="one architecture"):
        Ensemble([build_model("lipschitz", 1, 2, hidden_size=4), build_model("nrnn", 1, 2, hidden_size=4)])
