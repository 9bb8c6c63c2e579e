"""Theorem 2 tools and the explicit regulariser against brute force on tiny models."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from noisyrnn import LipschitzDrift, PaperDiffusion
from noisyrnn.data.task import Split, Task
from noisyrnn.dynamics import MatrixDiffusion
from noisyrnn.errors import ConfigError
from noisyrnn.models.recurrent import RecurrentClassifier
from noisyrnn.noise import EulerMaruyama, ResearchCodeNoise
from noisyrnn.theory.explicit import explicit_regularizer, noise_std
from noisyrnn.theory.jacobians import jacobian_norms, product_norms
from noisyrnn.theory.margin import certified_margin_bound, empirical_margin, margin_bounds, scores
from noisyrnn.theory.regularizer import regularizer_terms
from noisyrnn.training import TrainConfig, fit


def tiny_model(d_x=2, hidden=3, classes=3, init_std=3.0, scheme=None, seed=0, per_unit_step=True):
    torch.manual_seed(seed)
    drift = LipschitzDrift(d_x, hidden, init_std=init_std)
    model = RecurrentClassifier(drift, classes, step=0.3, learn_step=per_unit_step, scheme=scheme).double()
    if per_unit_step:
        with torch.no_grad():
            model.step_size.copy_(torch.rand(1, hidden, dtype=torch.float64) * 0.4 + 0.1)
    return model


def _run_from(model, h, x, start):
    """h_M as a function of the state h_start (plain loop, for the brute-force Jacobian)."""
    u = model.drift.encode(x)
    dt = model.step_size.reshape(-1)
    for m in range(start, x.shape[1]):
        h = h + dt * model.drift(h, u[:, m])
    return h


def test_jacobian_products_and_input_jacobians_match_dense_autograd():
    model = tiny_model()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    norms = jacobian_norms(model, x)
    states = model.hidden_states(x).detach()
    prods = product_norms(model, x)
    for b in range(2):
        for m in range(5):
            # ||Phi_{M-1,m+1}|| = ||d h_M / d h_{m+1}||
            J = torch.autograd.functional.jacobian(lambda h: _run_from(model, h[None], x[b:b + 1], m + 1)[0],
                                                   states[b, m + 1])
            assert math.isclose(float(norms.phi[b, m]), float(torch.linalg.matrix_norm(J, ord=2)), rel_tol=1e-9)
            J0 = torch.autograd.functional.jacobian(lambda h: _run_from(model, h[None], x[b:b + 1], m)[0],
                                                    states[b, m])
            assert math.isclose(float(prods[b, m]), float(torch.linalg.matrix_norm(J0, ord=2)), rel_tol=1e-9)
            # ||df/dx_m|| by central finite differences
            h, eps = states[b, m][None], 1e-6
            cols = []
            for i in range(2):
                e = torch.zeros(1, 1, 2, dtype=torch.float64)
                e[0, 0, i] = eps
                xm = x[b:b + 1, m:m + 1]
                f = lambda xx: model.drift(h, model.drift.encode(xx)[:, 0])[0]  # noqa: E731
                cols.append((f(xm + e) - f(xm - e)) / (2 * eps))
            fd = torch.stack(cols, 1)
            assert math.isclose(float(norms.drift_input[b, m]), float(torch.linalg.matrix_norm(fd, ord=2)),
                                rel_tol=1e-6)
    assert torch.allclose(norms.step[0], model.step_size.detach().max().expand(5))


def test_score_is_definition_2():
    model = tiny_model()
    x = torch.randn(4, 5, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    p = torch.softmax(model(x), -1).detach()
    o = scores(model, x, y)
    for b in range(4):
        expect = min(math.sqrt(2) * float(p[b, y[b]] - p[b, j]) for j in range(3) if j != y[b])
        assert math.isclose(float(o[b]), expect, rel_tol=1e-12)


def _brute_force_margin(model, x, y, directions=3000, radius=30.0, grid=300):
    """Min over random directions of the first flip distance along the ray (grid + bisection)."""
    g = torch.Generator().manual_seed(1)
    d = torch.randn(directions, *x.shape[1:], generator=g, dtype=x.dtype)
    d = d / d.flatten(1).norm(dim=1).reshape(-1, 1, 1)
    ts = torch.linspace(0, radius, grid, dtype=x.dtype)
    with torch.no_grad():
        pts = x + ts.reshape(-1, 1, 1, 1) * d.unsqueeze(0)  # (grid, D, M, d_x)
        pred = model(pts.reshape(-1, *x.shape[1:])).argmax(-1).reshape(grid, directions)
    flip = pred != y
    first = torch.where(flip.any(0), flip.float().argmax(0), torch.full((directions,), grid - 1))
    ok = flip.any(0)
    lo, hi = ts[(first - 1).clamp_min(0)], ts[first]
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        with torch.no_grad():
            f = model(x + mid.reshape(-1, 1, 1) * d).argmax(-1) != y
        hi, lo = torch.where(f, mid, hi), torch.where(f, lo, mid)
    return float(hi[ok].min())


def test_margin_bound_lies_below_the_attack_margin_which_matches_brute_force():
    model = tiny_model(d_x=1, hidden=4, classes=3, init_std=4.0, seed=3)
    x = torch.randn(5, 3, 1, dtype=torch.float64)  # 3-dimensional input space: brute force is exact enough
    with torch.no_grad():
        y = model(x).argmax(-1)  # every sample correctly classified: o > 0
    em = empirical_margin(model, x, y)
    assert em.found.all()
    mb = margin_bounds(model, x, y, em.point)
    cert = certified_margin_bound(model, x, y)
    assert (mb.score > 0).all()
    for b in range(5):
        brute = _brute_force_margin(model, x[b:b + 1], y[b:b + 1])
        assert em.margin[b] <= brute * 1.01  # the attack finds the closest flip point ...
        assert em.margin[b] >= brute * 0.9  # ... up to the brute force's direction grid
        assert 0 < mb.bound[b] <= em.margin[b]  # eq (17)
        assert cert[b] <= mb.bound[b] * (1 + 1e-9)  # sup over all inputs >= sup over the segment
    with torch.no_grad():  # the returned point does flip the prediction
        assert (model(em.point).argmax(-1) != y).all()


def test_misclassified_samples_have_zero_margin_and_no_bound():
    model = tiny_model(d_x=1, hidden=4, classes=3, seed=3)
    x = torch.randn(3, 3, 1, dtype=torch.float64)
    with torch.no_grad():
        wrong = (model(x).argmax(-1) + 1) % 3
    em = empirical_margin(model, x, wrong)
    assert (em.margin == 0).all()
    assert torch.isnan(margin_bounds(model, x, wrong).bound).all()


@pytest.mark.parametrize("kind", ["paper", "matrix"])
def test_explicit_regulariser_equals_half_of_theorem1_R(kind):
    torch.manual_seed(0)
    if kind == "paper":
        diffusion = PaperDiffusion(0.7, 0.5, 0.8)
    else:
        diffusion = MatrixDiffusion(torch.randn(4, 2, dtype=torch.float64))
    drift = LipschitzDrift(2, 4, init_std=3.0)
    model = RecurrentClassifier(drift, 3, step=0.2, scheme=EulerMaruyama(diffusion)).double()
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    y = torch.tensor([0, 2, 1])
    obj = explicit_regularizer(model, x, y)
    assert math.isclose(float(obj.loss), float(F.cross_entropy(model(x), y)), rel_tol=1e-12)
    for b in range(3):
        u = drift.encode(x[b:b + 1])[0].detach()
        loss_fn = lambda h: F.cross_entropy(model.decoder(h).unsqueeze(0), y[b:b + 1])  # noqa: E731
        terms = regularizer_terms(drift, diffusion, loss_fn, torch.zeros(4, dtype=torch.float64), u,
                                  model.step_size.detach().expand(5))
        assert math.isclose(float(obj.penalty[b]), terms.R / 2, rel_tol=1e-9)


def test_explicit_regulariser_gradient_matches_finite_differences():
    model = tiny_model(scheme=EulerMaruyama(PaperDiffusion(1.0, 0.4, 0.6)))
    x = torch.randn(2, 4, 2, dtype=torch.float64)
    y = torch.tensor([1, 0])
    param = model.drift.B
    (grad,) = torch.autograd.grad(explicit_regularizer(model, x, y).penalty.sum(), param)
    direction = torch.randn_like(param)
    eps = 1e-6
    with torch.no_grad():
        param += eps * direction
    up = float(explicit_regularizer(model, x, y).penalty.sum())
    with torch.no_grad():
        param -= 2 * eps * direction
    down = float(explicit_regularizer(model, x, y).penalty.sum())
    assert math.isclose(float((grad * direction).sum()), (up - down) / (2 * eps), rel_tol=1e-6)


def test_research_scheme_noise_variance_is_what_the_regulariser_uses():
    scheme = ResearchCodeNoise(mult_noise=0.3, add_noise=0.05)
    g = torch.Generator().manual_seed(0)
    h = torch.zeros(1, 4, dtype=torch.float64)
    f = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64)
    dt = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    m, a = scheme.draw(200_000, 1, 4, h, g)
    increments = scheme.step(h, f, dt, None, (m, a))  # (draws, 1, 4): the step, broadcast over draws
    var = increments.var(0)[0]
    expect = noise_std(scheme, h, None, f, dt)[0] ** 2
    assert torch.allclose(var, expect, rtol=0.02)


def _separable_task(n=48, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)

    def make(k):
        y = torch.randint(0, 2, (k,), generator=g)
        return Split(torch.randn(k, T, 1, generator=g) + (2.0 * y - 1.0).view(-1, 1, 1), y)
    return Task("tiny", make(n), make(n), make(n), num_classes=2)


def _model_for(task, seed=0):
    torch.manual_seed(seed)
    drift = LipschitzDrift(1, 6, init_std=1.0)
    return RecurrentClassifier(drift, 2, step=0.3, scheme=ResearchCodeNoise(0.1, 0.3))


def test_training_with_the_explicit_regulariser_lowers_it_and_scale_zero_is_plain_training():
    task = _separable_task()
    base = dict(epochs=6, batch_size=16, lr=0.02, lr_milestones=[100], noise=False)
    plain = fit(_model_for(task), task, TrainConfig(**base), progress=False)
    zero = fit(_model_for(task), task, TrainConfig(**base, regularizer="explicit", regularizer_scale=0.0),
               progress=False)
    for a, b in zip(plain.model.parameters(), zero.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    strong = fit(_model_for(task), task, TrainConfig(**base, regularizer="explicit", regularizer_scale=30.0),
                 progress=False)
    x, y = task.train.x, task.train.y
    r_plain = float(explicit_regularizer(plain.model, x, y).penalty.mean())
    r_strong = float(explicit_regularizer(strong.model, x, y).penalty.mean())
    assert r_strong < 0.7 * r_plain


def test_explicit_regulariser_errors_are_named():
    task = _separable_task()
    with pytest.raises(ConfigError, match="noise = false"):
        fit(_model_for(task), task, TrainConfig(epochs=1, regularizer="explicit", noise=True), progress=False)
    with pytest.raises(ConfigError, match="regularizer"):
        TrainConfig(regularizer="l2").validate()
    torch.manual_seed(0)
    plain = RecurrentClassifier(LipschitzDrift(1, 3), 2)
    with pytest.raises(ConfigError, match="noise scheme"):
        explicit_regularizer(plain, task.train.x[:2], task.train.y[:2])


@pytest.mark.slow
@pytest.mark.slow
def test_analyze_command_writes_resumable_per_checkpoint_json_report_and_figures(tmp_path, capsys):
    from noisyrnn import build_model
    from noisyrnn.cli import main
    from noisyrnn.training.checkpoint import save_model

    folders = []
    for name in ("nrnn", "lipschitz"):
        torch.manual_seed(0)
        model = build_model(name, 1, 5, hidden_size=8, step=0.1)
        folder = tmp_path / "runs" / name / "seed0"
        save_model(folder, model, extra={"task": "ecg"})
        folders.append(str(folder))
    out = tmp_path / "analysis"
    args = ["analyze", *folders, "--task", "ecg", "--out", str(out), "--samples", "3", "--probes", "2",
            "--hessian-samples", "16", "--lanczos-steps", "3", "--trace-probes", "2", "--no-progress"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"nrnn", "lipschitz"}
    for name in ("nrnn", "lipschitz"):
        rec = json.loads((out / "runs" / name / "seed0" / "analysis.json").read_text())
        m = rec["margin"]
        assert m["bound_below_empirical"] == m["correct"]
        for b, e, c in zip(m["bound"], m["empirical"], m["certified"]):
            if b is not None:
                assert c <= b <= e
        assert len(rec["hessian"]["top_eigenvalues"]) == 3
        assert rec["stability"]["deterministic"]["lower"] <= rec["stability"]["deterministic"]["upper"]
        assert len(m["phi_mean"]) == 140  # ECG: one norm per step
    for f in ("report.md", "margins.png", "hessian.png"):
        assert (out / f).is_file()
    stamp = (out / "runs" / "nrnn" / "seed0" / "analysis.json").stat().st_mtime_ns
    assert main(args) == 0  # resumes: an analysed checkpoint is not recomputed
    assert (out / "runs" / "nrnn" / "seed0" / "analysis.json").stat().st_mtime_ns == stamp
    assert "Hessian top eigenvalue" in capsys.readouterr().out
    assert main(["analyze", str(tmp_path), "--out", str(out)]) == 2  # not a checkpoint: a named error
    # `noisyrnn report` rebuilds the summary from the per-checkpoint records alone
    (out / "report.md").unlink()
    before = json.loads((out / "summary.json").read_text())
    import shutil
    shutil.rmtree(tmp_path / "runs")  # no checkpoint needed
    assert main(["report", str(out)]) == 0
    after = json.loads((out / "summary.json").read_text())
    assert after["models"] == before["models"] and (out / "report.md").is_file()
    lip = json.loads((out / "runs" / "lipschitz" / "seed0" / "analysis.json").read_text())
    assert after["models"]["lipschitz"]["phi_whole"]["mean"] == lip["margin"]["phi_mean"][0]
