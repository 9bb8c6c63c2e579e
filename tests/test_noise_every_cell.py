"""Hidden-state noise for every drift model, and the typed noise setting (issue: noise for every cell)."""

import json

import pytest
import torch

from noisyrnn import build_model
from noisyrnn.cli import main
from noisyrnn.errors import ConfigError
from noisyrnn.models import model_from_config

DRIFT_MODELS = ["lipschitz", "antisymmetric", "antisymmetric_gated", "cornn", "exprnn"]
SETTINGS = {"research": dict(noise="research", mult_noise=0.0, add_noise=0.3),
            "sde": dict(noise="sde", noise_eps=1.0, sigma1=0.3, sigma2=0.0)}


def _pair(name, setting, **extra):
    """The same weights with and without the noise setting."""
    torch.manual_seed(0)
    noisy = build_model(name, 2, 3, hidden_size=6, **SETTINGS[setting], **extra)
    torch.manual_seed(0)
    quiet = build_model(name, 2, 3, hidden_size=6, **extra)
    quiet.load_state_dict(noisy.state_dict())
    return noisy, quiet


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("name", DRIFT_MODELS)
def test_every_drift_injects_noise_only_when_asked(name, setting):
    noisy, quiet = _pair(name, setting)
    assert noisy.injects_noise and not quiet.injects_noise
    x = torch.randn(4, 7, 2)
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    assert torch.equal(noisy(x), quiet(x))  # noise off: the noise-free model exactly
    a, b, c = noisy(x, noise=True, generator=g(1)), noisy(x, noise=True, generator=g(1)), noisy(x, noise=True,
                                                                                                    generator=g(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)  # seeded, and really random


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("name", ["antisymmetric", "exprnn", "cornn"])
def test_one_noisy_step_has_the_scheme_s_variance(name, setting):
    """One step from h_0 = 0: the noisy state minus the noise-free one is the scheme's increment,
    N(0, add^2) for the research scheme (not scaled by sqrt(delta)) and N(0, delta sigma1^2) for
    eq (5). coRNN: it enters the velocity z, and the position y gets delta times it (IMEX)."""
    noisy, quiet = _pair(name, setting)
    x = torch.randn(4000, 1, 2)
    with torch.no_grad():
        diff = noisy.hidden_states(x, noise=True, generator=torch.Generator().manual_seed(0))[:, 1] \
            - quiet.hidden_states(x)[:, 1]
    dt = float(noisy.step_size)
    scale = 0.3 if setting == "research" else 0.3 * dt ** 0.5
    if name == "cornn":
        y, z = diff.split(6, dim=-1)
        assert torch.allclose(y, dt * z, atol=1e-6)
        diff = z
    assert abs(diff.mean().item()) < 5 * scale / diff.numel() ** 0.5
    assert diff.std().item() == pytest.approx(scale, rel=0.03)


def test_research_multiplicative_noise_scales_the_drift_per_unit():
    """h_1 = h_0 + delta m f with m ~ U(1 - mult, 1): with add = 0 the ratio (h_1 - h_0)/(delta f) is m."""
    torch.manual_seed(0)
    model = build_model("antisymmetric", 2, 3, hidden_size=6, noise="research", mult_noise=0.4, add_noise=0.0)
    x = torch.randn(3000, 1, 2)
    with torch.no_grad():
        h1 = model.hidden_states(x, noise=True, generator=torch.Generator().manual_seed(0))[:, 1]
        f = model.drift(torch.zeros(3000, 6), model.drift.encode(x)[:, 0])
    m = h1 / (float(model.step_size) * f)
    assert m.min() >= 0.6 - 1e-4 and m.max() <= 1.0 + 1e-4
    assert m.mean().item() == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize("params,needle", [
    (dict(noise="sde"), "injects no noise"),
    (dict(noise="sde", sigma1=0.5, noise_eps=0.0), "injects no noise"),
    (dict(noise="research", mult_noise=0.0, add_noise=0.0), "injects no noise"),
    (dict(sigma1=0.5), "'sigma1' applies to noise = 'sde'"),
    (dict(noise="sde", sigma1=0.5, add_noise=0.1), "'add_noise' applies to noise = 'research'"),
    (dict(noise="pink"), "unknown noise setting 'pink'"),
    (dict(noise="none"), "for no noise use model 'lipschitz'"),
    (dict(noise="research", add_noise=-0.1), "add_noise must be a finite number >= 0"),
])
def test_nrnn_noise_setting_errors(params, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        build_model("nrnn", 1, 2, **params)


def test_baseline_and_lstm_noise_setting_errors():
    with pytest.raises(ConfigError, match="'mult_noise' applies to noise = 'research', but model 'cornn' has noise = 'none'"):
        build_model("cornn", 1, 2, mult_noise=0.1)
    with pytest.raises(ConfigError, match="'lstm' has no hidden-state noise injection"):
        build_model("lstm", 1, 2, noise="research")
    with pytest.raises(ConfigError, match="unknown parameter 'add_noise' for model 'gru'"):
        build_model("gru", 1, 2, add_noise=0.1)
    assert build_model("cornn", 1, 2, noise="sde", sigma1=0.2).config["params"]["noise"] == "sde"


def test_a_checkpoint_written_before_typed_settings_still_loads():
    """Old model.json files stored every scheme's keys; the unused ones never acted and are dropped."""
    old = {"name": "nrnn", "input_size": 1, "num_classes": 2,
           "params": {"hidden_size": 4, "beta": 0.75, "gamma_a": 0.1, "gamma_w": 0.1, "alpha": 1.0, "init_std": 0.1,
                      "step": 0.1, "learn_step": True, "noise": "research", "mult_noise": 0.03, "add_noise": 0.06,
                      "sigma1": 0.0, "sigma2": 0.0, "noise_eps": 1.0}}
    model = model_from_config(old)
    assert model.scheme.add_noise == 0.06 and "sigma1" not in model.config["params"]
    noise_free = dict(old, params={**old["params"], "mult_noise": 0.0, "add_noise": 0.0})
    with pytest.raises(ConfigError, match="injects no noise.*use model 'lipschitz'"):
        model_from_config(noise_free)  # a noise-free "NRNN": refused, with what to do instead


def test_cli_set_needs_a_section_and_trains_cornn_with_sde_noise(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 12, 1))
    y = (X[:, :6, 0].mean(1) > 0).astype(int)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    base = ["train", "--data", str(tmp_path / "d.npz"), "--model", "cornn", "--epochs", "1", "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "a"), "--set", "noise=sde"]) == 2
    err = capsys.readouterr().err
    assert "--set noise=... names no section: write params.noise=" in err
    assert not (tmp_path / "a").exists()
    assert main(base + ["--out", str(tmp_path / "b"), "--set", "params.noise=sde", "params.sigma1=0.5",
                        "params.hidden_size=8"]) == 0
    params = json.loads((tmp_path / "b" / "model.json").read_text())["model"]["params"]
    assert params["noise"] == "sde" and params["sigma1"] == 0.5 and "mult_noise" not in params
    assert main(base + ["--out", str(tmp_path / "c"), "--set", "params.noise=sde"]) == 2
    assert "injects no noise" in capsys.readouterr().err
    # the example on the NRNN, whose defaults carry the research setting's levels
    nrnn = [a if a != "cornn" else "nrnn" for a in base]
    assert main(nrnn + ["--out", str(tmp_path / "d"), "--set", "params.noise=sde", "params.sigma1=0.5",
                        "params.hidden_size=8"]) == 0
    params = json.loads((tmp_path / "d" / "model.json").read_text())["model"]["params"]
    assert params["noise"] == "sde" and params["sigma1"] == 0.5 and "add_noise" not in params
    assert main(nrnn + ["--out", str(tmp_path / "e"), "--set", "params.noise=sde", "params.sigma1=0.5",
                        "params.add_noise=0.1"]) == 2  # the user's own key of another setting: refused
    assert "'add_noise' applies to noise = 'research'" in capsys.readouterr().err


def test_a_sweep_may_switch_a_recipe_s_noise_setting():
    from noisyrnn.experiments.sweep import parse_sweep

    sweep = parse_sweep({"task": "ecg", "models": ["nrnn"], "seeds": 1,
                         "overrides": {"nrnn": {"params.noise": "sde"}}, "grid": {"params.sigma1": [0.1, 0.3]}})
    assert [(r.config["params"]["noise"], r.config["params"]["sigma1"]) for r in sweep.runs] == [("sde", 0.1),
                                                                                                  ("sde", 0.3)]
    assert all("mult_noise" not in r.config["params"] for r in sweep.runs)
    with pytest.raises(ConfigError, match="'add_noise' applies to noise = 'research'"):
        parse_sweep({"task": "ecg", "models": ["nrnn"], "seeds": 1,
                     "overrides": {"nrnn": {"params.noise": "sde", "params.sigma1": 0.1, "params.add_noise": 0.2}}})


@pytest.mark.slow
@pytest.mark.slow
def test_with_and_without_noise_benchmark_smoke_runs(tmp_path):
    """benchmarks/bench_noise_every_cell.py at a tiny scale: the 'with' runs really inject the
    chosen noise, the 'without' runs none, and the choice is the best validation score."""
    from conftest import run_script

    out = tmp_path / "nec"
    run_script("benchmarks/bench_noise_every_cell.py", "--out", str(out), "--cells", "antisymmetric", "--seeds", "1",
               "--search-seeds", "1", "--levels", "0.06", "0.2", "--epochs", "1", "--threads", "1")
    res = json.loads((out / "results.json").read_text())["cells"]["antisymmetric"]
    best = max((c for c in res["candidates"] if c["status"] == "done"), key=lambda c: c["validation"])
    assert res["chosen"]["add_noise"] == best["add_noise"]
    stores = out / "stores" / "antisymmetric"
    with_p = json.loads((stores / "with" / "runs" / "antisymmetric" / "seed0" / "model.json").read_text())
    without_p = json.loads((stores / "without" / "runs" / "antisymmetric" / "seed0" / "model.json").read_text())
    assert with_p["model"]["params"]["noise"] == "research"
    assert with_p["model"]["params"]["add_noise"] == best["add_noise"]
    assert without_p["model"]["params"]["noise"] == "none"
    assert "| Antisymmetric RNN | none |" in (out / "report.md").read_text() and (out / "figure.png").is_file()
