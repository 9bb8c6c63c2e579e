"""Unequal lengths: padding never changes a prediction, for every model and every path."""

import pytest
import torch

from noisyrnn import build_model
from noisyrnn.ensemble import Ensemble
from noisyrnn.errors import InputError
from noisyrnn.models import MODEL_NAMES

LENGTHS = [9, 4, 1, 6]
T_PAD = 9


def padded_batch(d=3, pad_value=5.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randn(L, d, generator=g, dtype=torch.float64) for L in LENGTHS]
    x = torch.full((len(seqs), T_PAD, d), pad_value, dtype=torch.float64)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    return seqs, x, torch.tensor(LENGTHS)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("fused", [True, False])
def test_padded_sequence_gives_the_logits_of_the_sequence_alone(name, fused):
    torch.manual_seed(0)
    model = build_model(name, 3, 4, hidden_size=8).double()
    if hasattr(model, "fused"):
        model.fused = fused
    seqs, x, lengths = padded_batch(pad_value=5.0)
    batched = model(x, lengths=lengths)
    for i, s in enumerate(seqs):
        alone = model(s.unsqueeze(0))
        assert torch.allclose(batched[i], alone[0], rtol=1e-10, atol=1e-12), (name, i)
    # a different padding value changes nothing either
    _, x2, _ = padded_batch(pad_value=-100.0)
    assert torch.allclose(model(x2, lengths=lengths), batched, rtol=1e-10, atol=1e-12)
    # without lengths the padding is read as data: the test above is not vacuous
    assert not torch.allclose(model(x), batched, atol=1e-6)


@pytest.mark.parametrize("name", ["nrnn", "lipschitz", "cornn", "lstm"])
def test_padded_batch_gradient_equals_sum_of_separate_gradients(name):
    torch.manual_seed(1)
    model = build_model(name, 3, 2, hidden_size=8).double()
    seqs, x, lengths = padded_batch()
    y = torch.tensor([0, 1, 1, 0])
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x, lengths=lengths), y, reduction="sum").backward()
    batched = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    for i, s in enumerate(seqs):
        torch.nn.functional.cross_entropy(model(s.unsqueeze(0)), y[i:i + 1], reduction="sum").backward()
    for k, g in batched.items():
        assert torch.allclose(g, dict(model.named_parameters())[k].grad, rtol=1e-9, atol=1e-12), k


@pytest.mark.parametrize("params", [
    {"noise": "research", "mult_noise": 0.3, "add_noise": 0.1},
    {"noise": "sde", "sigma1": 0.4, "sigma2": 1.0},
])
def test_fused_and_generic_loops_agree_with_lengths_and_noise(params):
    torch.manual_seed(2)
    model = build_model("nrnn", 3, 4, hidden_size=8, step=0.1, **params).double()
    _, x, lengths = padded_batch()
    outs = []
    for fused in (True, False):
        model.fused = fused
        outs.append(model(x, noise=True, generator=torch.Generator().manual_seed(3), lengths=lengths))
    assert torch.allclose(outs[0], outs[1], rtol=1e-10, atol=1e-12)


def test_hidden_states_frozen_after_each_length():
    torch.manual_seed(3)
    model = build_model("antisymmetric", 3, 2, hidden_size=8).double()
    _, x, lengths = padded_batch()
    states = model.hidden_states(x, lengths=lengths)
    for i, L in enumerate(LENGTHS):
        assert torch.equal(states[i, L:], states[i, L].expand_as(states[i, L:]))
        if L > 1:
            assert not torch.equal(states[i, L - 1], states[i, L])


def test_ensemble_with_lengths_equals_members():
    torch.manual_seed(4)
    models = [build_model("nrnn", 3, 2, hidden_size=8) for _ in range(3)]
    ens = Ensemble(models)
    _, x, lengths = padded_batch()
    x = x.float()
    out = ens(x, lengths=lengths)
    for s in range(3):
        assert torch.allclose(out[s], ens.member(s)(x, lengths=lengths), atol=1e-5)
    # members may see batches of different lengths, some of them unpadded
    per_member = torch.stack([lengths, torch.full_like(lengths, T_PAD), lengths.flip(0)])
    out = ens(x.expand(3, *x.shape), lengths=per_member)
    for s in range(3):
        assert torch.allclose(out[s], ens.member(s)(x, lengths=per_member[s]), atol=1e-5)


@pytest.mark.parametrize("bad,message", [
    (torch.tensor([0, 1, 1, 1]), r"lengths must lie in \[1, 9\]"),
    (torch.tensor([10, 1, 1, 1]), r"lengths must lie in \[1, 9\]"),
    (torch.tensor([1, 1, 1]), r"lengths must have shape \(4,\)"),
    (torch.tensor([1.0, 2.0, 3.0, 4.0]), "lengths must be integers"),
])
@pytest.mark.parametrize("name", ["nrnn", "cornn", "gru"])
def test_bad_lengths_are_named(name, bad, message):
    model = build_model(name, 3, 2, hidden_size=4)
    with pytest.raises(InputError, match=message):
        model(torch.zeros(4, T_PAD, 3), lengths=bad)


def test_explicit_regularizer_of_a_padded_sequence_equals_the_sequence_alone():
    from noisyrnn.theory.explicit import explicit_regularizer

    torch.manual_seed(5)
    model = build_model("nrnn", 3, 2, hidden_size=8, mult_noise=0.3, add_noise=0.2).double()
    seqs, x, lengths = padded_batch()
    y = torch.tensor([0, 1, 1, 0])
    batched = explicit_regularizer(model, x, y, lengths=lengths)
    for i, s in enumerate(seqs):
        alone = explicit_regularizer(model, s.unsqueeze(0), y[i:i + 1])
        assert torch.allclose(batched.penalty[i], alone.penalty[0], rtol=1e-10)
        assert torch.allclose(batched.logits[i], alone.logits[0], rtol=1e-10)
    assert not torch.allclose(explicit_regularizer(model, x, y).penalty, batched.penalty)


def test_perturbations_and_attacks_touch_real_steps_only():
    from noisyrnn.data.task import Split
    from noisyrnn.evaluation import real_steps_only
    from noisyrnn.attacks import fgsm
    from noisyrnn.perturbations import AdditiveWhiteNoise

    _, x, lengths = padded_batch(pad_value=0.0)
    x = x.float()
    noisy = real_steps_only(AdditiveWhiteNoise(1.0)(x, torch.Generator().manual_seed(0)), x, lengths)
    mask = Split(x, torch.zeros(4, dtype=torch.long), lengths).step_mask().bool().expand_as(x)
    assert torch.equal(noisy[~mask], x[~mask]) and (noisy[mask] != x[mask]).all()
    model = build_model("lstm", 3, 2, hidden_size=8)
    adv = fgsm(model, x, torch.tensor([0, 1, 1, 0]), 0.1, lengths=lengths)
    assert torch.equal(adv[~mask], x[~mask])
    assert torch.allclose((adv - x)[mask].abs(), torch.tensor(0.1))
