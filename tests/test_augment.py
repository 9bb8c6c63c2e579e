"""Input-noise augmentation (train.input_noise, train.input_mult_noise): the declared options,
drawn from each member's generator on real steps only, reproducible, off at evaluation, and
available from the CLI, TOML and the estimators."""

import math

import numpy as np
import pytest
import torch

from conftest import make_tiny_task
from noisyrnn import NRNNClassifier, build_model
from noisyrnn.errors import ConfigError
from noisyrnn.training import TrainConfig, fit
from noisyrnn.training.augment import augment_inputs, draw_level


def test_additive_and_multiplicative_noise_have_their_std_on_real_steps_only():
    x = torch.ones(2, 400, 50, 1)  # (S, b, T, d)
    lengths = torch.tensor([[50] * 200 + [10] * 200, [30] * 400])
    cfg = TrainConfig(input_noise=0.4)
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    out = augment_inputs(x, lengths, cfg, gens)
    real = torch.arange(50).view(1, 1, 50, 1) < lengths.view(2, 400, 1, 1)
    assert torch.equal(out[~real.expand_as(out)], x[~real.expand_as(x)])  # padding untouched
    diff = (out - x)[real.expand_as(out)]
    assert abs(float(diff.std()) - 0.4) < 0.01 and abs(float(diff.mean())) < 0.01
    mult = augment_inputs(x * 3, lengths, TrainConfig(input_mult_noise=0.2), gens)
    ratio = (mult / 3 - 1)[real.expand_as(mult)]
    assert abs(float(ratio.std()) - 0.2) < 0.01
    # each member from its own generator: reproducible, and different between members
    again = augment_inputs(x, lengths, cfg, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    fresh = augment_inputs(x, lengths, cfg, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    assert torch.equal(again, fresh) and not torch.equal(again[0, :, :30], again[1, :, :30])


def test_a_range_draws_one_level_per_batch_inside_it():
    g = torch.Generator().manual_seed(0)
    levels = [draw_level([0.2, 0.8], g) for _ in range(2000)]
    assert 0.2 <= min(levels) and max(levels) <= 0.8 and abs(np.mean(levels) - 0.5) < 0.02
    assert draw_level(0.3, g) == 0.3


@pytest.mark.parametrize("value,ok", [(0.4, True), ([0.2, 0.8], True), (0, True), ([0.8, 0.2], False), (-0.1, False),
                                      ([0.1], False), ("loud", False), (math.nan, False)])
def test_the_option_is_declared_and_checked(value, ok):
    if ok:
        assert TrainConfig.from_dict({"input_noise": value}).input_noise == value
    else:
        with pytest.raises(ConfigError, match="train.input_noise must be a number >= 0, or \\[low, high\\]"):
            TrainConfig.from_dict({"input_noise": value})


def test_training_with_augmentation_is_reproducible_and_changes_the_updates_only():
    task = make_tiny_task(n=32, T=8)

    def run(**kw):
        model = build_model("lipschitz", 1, 2, hidden_size=4, seed=0)
        history = fit(model, task, TrainConfig(epochs=3, batch_size=8, seed=0, **kw), progress=False).history
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]  # wall clock aside

    plain, noisy, again = run(), run(input_noise=0.5), run(input_noise=0.5)
    assert noisy == again  # the run's generators: the same draws
    assert noisy[0]["train_loss"] != plain[0]["train_loss"]
    both = run(input_noise=[0.1, 0.5], input_mult_noise=0.2)
    assert both != noisy


def test_estimator_and_cli_take_the_options(tmp_path, capsys):
    from noisyrnn.cli import main

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 12, 1))
    y = np.where(X[:, :, 0].mean(1) > 0, "a", "b")
    clf = NRNNClassifier(model="lipschitz", epochs=2, params={"hidden_size": 4}, input_noise=[0.2, 0.6]).fit(X, y)
    assert clf.get_params()["input_noise"] == [0.2, 0.6]
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--model", "lipschitz", "--epochs", "2", "--set",
                 "params.hidden_size=4", "train.input_noise=0.4", "train.input_mult_noise=[0.1,0.3]",
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert '"input_noise": 0.4' in capsys.readouterr().err
