"""One declaration per setting: TrainConfig's defaults, the choices the training code accepts,
the learning-rate rule, `noisyrnn settings` and `train --help` all come from
noisyrnn.parameters."""

import dataclasses

import pytest
import torch

from noisyrnn.cli import main, settings_text
from noisyrnn.errors import ConfigError
from noisyrnn.parameters import MODEL_PARAMS, TRAIN_PARAMS, decay_milestones
from noisyrnn.training import TrainConfig
from noisyrnn.training.config import OPTIMIZERS, SELECTION


def test_train_config_fields_are_the_declared_options_with_their_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert list(fields) == list(TRAIN_PARAMS)
    assert fields == {name: rule.default for name, rule in TRAIN_PARAMS.items()}


def test_choices_the_training_code_implements_are_the_declared_ones():
    assert tuple(OPTIMIZERS) == TRAIN_PARAMS["optimizer"].choices
    assert tuple(SELECTION) == TRAIN_PARAMS["select"].choices


@pytest.mark.parametrize("key,value,fragment", [
    ("optimizer", "sgd", "train.optimizer must be one of 'adam', 'rmsprop', got 'sgd'"),
    ("select", "best", "train.select must be one of"),
    ("regularizer", "l2", "train.regularizer must be one of 'none', 'explicit'"),
    ("lr_milestones", [0], "train.lr_milestones must be a list of epochs"),
])
def test_a_bad_value_names_the_setting_and_its_rule(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig.from_dict({key: value})


@pytest.mark.parametrize("epochs,expected", [(1, []), (2, [1]), (10, [9]), (100, [90]), (200, [180]), (60, [54])])
def test_unset_milestones_follow_the_epochs_by_the_one_rule(epochs, expected):
    assert decay_milestones(epochs) == expected
    assert TrainConfig(epochs=epochs).milestones == expected
    assert TrainConfig(epochs=epochs, lr_milestones=[3]).milestones == [3]


def test_the_loop_decays_at_the_rule_s_epoch():
    """Training with lr_milestones unset: lr x lr_gamma after epoch int(0.9 * 5) = 4 of 5."""
    from conftest import make_tiny_task
    from noisyrnn import build_model
    from noisyrnn.training import fit

    model = build_model("lipschitz", 1, 2, hidden_size=4, seed=0)
    result = fit(model, make_tiny_task(n=16, T=5), TrainConfig(epochs=5, lr=0.01, lr_gamma=0.5, batch_size=8))
    assert [round(h["lr"], 6) for h in result.history] == [0.01, 0.01, 0.01, 0.005, 0.005]


def test_settings_lists_every_declared_setting(capsys):
    text = settings_text()
    for name in MODEL_PARAMS:
        assert f"params.{name}:" in text
    for name in TRAIN_PARAMS:
        assert f"train.{name}:" in text
    assert main(["settings", "--model", "exprnn"]) == 0
    out = capsys.readouterr().out
    assert "train.lr: a finite number > 0; default 0.001." in out  # the model's own override
    assert "params.beta" not in out  # a Lipschitz parameter, not expRNN's
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "train.batch_size: an integer >= 1, or 'auto' (min(16, n_train // 10), at least 1); default 32." in out


def test_estimator_defaults_are_the_declared_ones():
    from noisyrnn import NRNNClassifier

    params = NRNNClassifier().get_params()
    assert params["epochs"] == TRAIN_PARAMS["epochs"].default
    assert params["batch_size"] == TRAIN_PARAMS["batch_size"].default
    assert params["device"] == TRAIN_PARAMS["device"].default
    torch.manual_seed(0)


@pytest.mark.parametrize("n,expected", [(5, 1), (40, 4), (50, 5), (216, 16), (500, 16), (58000, 16)])
def test_auto_batch_size_is_the_bakeoff_rule(n, expected):
    """``batch_size = "auto"`` is int(min(n / 10, 16)) of Fawaz et al. (2019), at least 1; the
    expected values are that formula worked by hand."""
    assert TrainConfig(batch_size="auto").batch_for(n) == expected
    assert TrainConfig(batch_size=32).batch_for(n) == min(32, n)


@pytest.mark.parametrize("bad", ["big", 0, -3, 2.5, True, [8]])
def test_batch_size_refuses_anything_but_a_positive_integer_or_auto(bad):
    with pytest.raises(ConfigError, match=r"train\.batch_size must be an integer >= 1, or 'auto'"):
        TrainConfig(batch_size=bad).validate()


def test_auto_batch_makes_one_update_per_batch_of_the_rule():
    """40 training sequences, "auto": batches of 4, so 10 optimizer steps per epoch (counted by a
    torch optimizer hook), and the same run as batch_size=4 spelled out."""
    from conftest import make_tiny_task
    from noisyrnn import build_model
    from noisyrnn.training import fit

    steps = []
    from torch.optim.optimizer import register_optimizer_step_post_hook

    handle = register_optimizer_step_post_hook(lambda opt, args, kwargs: steps.append(1))
    try:
        task = make_tiny_task(n=40, T=5)
        runs = {}
        for batch in ("auto", 4, 32):
            steps.clear()
            model = build_model("lipschitz", 1, 2, hidden_size=4, seed=0)
            result = fit(model, task, TrainConfig(epochs=3, lr=0.01, batch_size=batch), progress=False)
            runs[batch] = (len(steps), [h["train_loss"] for h in result.history])
    finally:
        handle.remove()
    assert runs["auto"][0] == 3 * 10 and runs[32][0] == 3 * 2
    assert runs["auto"][1] == runs[4][1]
    assert runs["auto"][1] != runs[32][1]
