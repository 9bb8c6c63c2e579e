"""The cell engine (noisyrnn.engine.cells) against the reference: autograd through the generic
loop of noisyrnn.engine.integrate, with the same generator, so the same noise (drawn in the C++
loop there, pre-drawn into (M, B, N) tensors here)."""

import pytest
import torch

from noisyrnn import build_model
from noisyrnn.engine.cells import cells_apply
from noisyrnn.engine.integrate import integrate, step_sizes
from noisyrnn.models.baselines import AntisymmetricDrift, ExpRNNDrift
from noisyrnn.noise import Deterministic, EulerMaruyama, ResearchCodeNoise
from noisyrnn.dynamics import PaperDiffusion

NOISE = {
    "none": {},
    "research": dict(noise="research", mult_noise=0.3, add_noise=0.1),
    "sde": dict(noise="sde", noise_eps=1.0, sigma1=0.3, sigma2=0.2),
}


def _run(model, x, noise, lengths, fused):
    model.fused = fused
    model.zero_grad()
    xx = x.clone().requires_grad_()
    y = model(xx, noise=noise, generator=torch.Generator().manual_seed(3), lengths=lengths)
    y.square().sum().backward()
    grads = {k: v.grad.clone() for k, v in model.named_parameters() if v.grad is not None}
    return y.detach(), xx.grad, grads


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("name", ["lipschitz", "antisymmetric", "antisymmetric_gated", "cornn", "exprnn"])
@pytest.mark.parametrize("noise", ["none", "research", "sde"])
@pytest.mark.parametrize("padded", [False, True])
def test_cell_engine_equals_reference_loop(name, noise, padded):
    torch.manual_seed(0)
    model = build_model(name, 3, 4, hidden_size=16, **NOISE[noise])
    x = torch.randn(5, 23, 3)
    lengths = torch.tensor([23, 5, 17, 1, 23]) if padded else None
    drift = model.drift
    assert cells_apply(drift, model.scheme if noise != "none" else Deterministic(), torch.zeros(5, drift.hidden_size),
                       drift.encode(x), step_sizes(model.step_size, 23, drift.hidden_size, x))
    y1, gx1, g1 = _run(model, x, noise != "none", lengths, fused=True)
    y2, gx2, g2 = _run(model, x, noise != "none", lengths, fused=False)
    assert set(g1) == set(g2)
    assert _rel(y1, y2) < 1e-5
    assert _rel(gx1, gx2) < 1e-5
    for key in g2:
        assert _rel(g1[key], g2[key]) < 1e-5, key


@pytest.mark.parametrize("scheme", [ResearchCodeNoise(0.2, 0.05),
                                    EulerMaruyama(PaperDiffusion(1.0, 0.2, 0.3)), Deterministic()])
@pytest.mark.parametrize("make", [lambda: AntisymmetricDrift(3, 12), lambda: AntisymmetricDrift(3, 12, gated=True),
                                  lambda: ExpRNNDrift(3, 12)])
def test_learned_per_unit_step_gradient(scheme, make):
    """d/d delta of a per-unit step (1, N), accumulated in the C++ backward."""
    torch.manual_seed(1)
    drift = make()
    u = drift.encode(torch.randn(4, 19, 3)).detach().requires_grad_()
    dt = torch.full((1, 12), 0.3).add(torch.rand(1, 12) * 0.1).requires_grad_()
    h0 = torch.randn(4, 12) * 0.1
    grads = []
    for backend in ("auto", "loop"):
        h = integrate(drift, h0, u, dt, scheme, noise=True, generator=torch.Generator().manual_seed(5), backend=backend)
        grads.append((h.detach(), *torch.autograd.grad(h.sin().sum(), (dt, u))))
    for a, b in zip(grads[0], grads[1]):
        assert _rel(a, b) < 1e-5


def test_noise_differs_between_generators_and_is_off_at_evaluation():
    torch.manual_seed(0)
    model = build_model("cornn", 2, 3, hidden_size=8, **NOISE["research"])
    x = torch.randn(4, 30, 2)
    with torch.no_grad():
        a = model(x, noise=True, generator=torch.Generator().manual_seed(1))
        b = model(x, noise=True, generator=torch.Generator().manual_seed(2))
        c = model(x, noise=True, generator=torch.Generator().manual_seed(1))
        clean = model(x)
    assert torch.equal(a, c)
    assert (a - b).abs().max() > 1e-4
    model.fused = False
    with torch.no_grad():
        assert _rel(model(x), clean) < 1e-6


def test_members_run_together_equal_each_run_alone():
    """S = 3 members (different weights, steps, noise levels, lengths) in one C++ call equal
    three S = 1 calls; every input's gradient included."""
    from noisyrnn.engine.workspace import Workspace
    from noisyrnn.engine.cells import FORMS, CellSpec, LoopNoise, cell_recurrence

    torch.manual_seed(5)
    S, M, B, N = 3, 12, 4, 8
    u, h0 = torch.randn(S, B, M, N), torch.randn(S, B, N)
    w, dt = 0.3 * torch.randn(S, N, 2 * N), 0.1 + 0.05 * torch.rand(S, N)
    noise = (LoopNoise("research", 0.2, 0.8, 0.1, key_u=11, key_n=12), LoopNoise("eq4", s1=0.3, s2=0.2, key_n=13), LoopNoise("deterministic"))
    lengths = (torch.tensor([12, 3, 7, 12]), torch.empty(0, dtype=torch.int64), torch.tensor([1, 12, 12, 5]))
    weights = torch.randn(S, B, N)

    def spec(idx):
        return CellSpec(FORMS["lipschitz"], tuple(noise[i] for i in idx), (0.0,) * len(idx), (0.0,) * len(idx),
                        (0.0,) * len(idx), tuple(lengths[i] for i in idx))

    def run(idx):
        leaves = [t[idx].clone().requires_grad_() for t in (u, h0, w, dt)]
        out = cell_recurrence(*leaves, u.new_empty(len(idx), 0), spec(idx), Workspace())
        (out * weights[idx]).sum().backward()
        return [out.detach()] + [t.grad for t in leaves]

    together = run([0, 1, 2])
    alone = [run([s]) for s in range(S)]
    for k, name in enumerate(["h_M", "u", "h0", "w", "dt"]):
        b = torch.cat([a[k] for a in alone])
        assert (together[k] - b).norm() <= 1e-6 * b.norm(), name


@pytest.mark.parametrize("name", ["lipschitz", "antisymmetric", "antisymmetric_gated", "cornn", "exprnn"])
def test_inference_path_with_rotating_buffers_equals_reference(name):
    """Under no_grad the engine keeps two state rows only (nothing saved for a backward)."""
    torch.manual_seed(2)
    model = build_model(name, 3, 4, hidden_size=16, **NOISE["research"])
    x = torch.randn(6, 17, 3)
    lengths = torch.tensor([17, 2, 9, 1, 17, 16])
    with torch.no_grad():
        outs = []
        for fused in (True, False):
            model.fused = fused
            outs.append([model(x, noise=noise, generator=torch.Generator().manual_seed(4), lengths=lengths)
                         for noise in (False, True)])
    for a, b in zip(*outs):
        assert _rel(a, b) < 1e-5


def test_engine_benchmark_smoke_runs(tmp_path):
    """benchmarks/bench_engine.py (the speed targets table) runs and writes its table."""
    import json

    from conftest import run_script

    run_script("benchmarks/bench_engine.py", "--out", str(tmp_path / "be"), "--shapes", "ecg", "--repeats", "1",
               "--default-malloc")
    result = json.loads((tmp_path / "be.json").read_text())
    assert set(result["shapes"]["ecg"]["cells"]) == {"lipschitz", "antisymmetric", "cornn", "exprnn", "antisymmetric_gated"}
    assert "target >= 3x" in (tmp_path / "be.md").read_text()


@pytest.mark.parametrize("form,width", [("lipschitz", 8), ("gated", 16), ("cornn", 8)])
@pytest.mark.parametrize("channels", [1, 5])
def test_in_loop_input_projection_equals_the_encoded_inputs(form, width, channels):
    """LinearInputs: u_m = x_m U^T + b formed inside the C++ loop (dU, db summed there) gives
    the recurrence on the materialised u, with the same gradients for x, U, b and the weight;
    S = 3 members with padded lengths."""
    from noisyrnn.dynamics import LinearInputs
    from noisyrnn.engine.workspace import Workspace
    from noisyrnn.engine.cells import FORMS, CellSpec, LoopNoise, cell_recurrence

    torch.manual_seed(6)
    S, M, B, N = 3, 11, 4, 8
    H = 2 * N if form == "cornn" else N
    P = {"lipschitz": 2 * N, "gated": 2 * N, "cornn": N}[form]
    x, U, b = torch.randn(S, B, M, channels), torch.randn(S, width, channels), torch.randn(S, width)
    h0, w, dt = 0.1 * torch.randn(S, B, H), 0.3 * torch.randn(S, H, P), torch.full((S, 1), 0.1)
    noise = (LoopNoise("research", 0.2, 0.8, 0.1, key_u=1, key_n=2), LoopNoise("eq4", s1=0.3, s2=0.2, key_n=3), LoopNoise("deterministic"))
    lengths = (torch.tensor([11, 3, 7, 11]), torch.empty(0, dtype=torch.int64), torch.tensor([1, 11, 11, 5]))
    spec = CellSpec(FORMS[form], noise, (0.5,) * S, (0.3,) * S, (0.1,) * S, lengths)
    probe = torch.randn(S, B, H)
    results = []
    for in_loop in (True, False):
        leaves = [t.clone().requires_grad_() for t in (x, U, b, h0, w)]
        lx, lU, lb, lh0, lw = leaves
        u = LinearInputs(lx, lU, lb) if in_loop else LinearInputs(lx, lU, lb).materialise()
        out = cell_recurrence(u, lh0, lw, dt, x.new_empty(S, 0), spec, Workspace())
        (out * probe).sum().backward()
        results.append([out.detach()] + [t.grad for t in leaves])
    for k, name in enumerate(["h_M", "x", "U", "b", "h0", "weight"]):
        a, ref = results[0][k], results[1][k]
        assert (a - ref).norm() <= 1e-5 * ref.norm(), name


def test_wide_inputs_are_encoded_once_and_still_run_on_the_engine():
    """More than IN_LOOP_MAX_CHANNELS input channels: Drift.encoded materialises u (one GEMM
    over every step) and the engine runs on it, equal to the reference loop."""
    from noisyrnn.dynamics import IN_LOOP_MAX_CHANNELS, LinearInputs

    torch.manual_seed(3)
    d_x = IN_LOOP_MAX_CHANNELS + 1
    model = build_model("antisymmetric", d_x, 3, hidden_size=8, **NOISE["research"])
    x = torch.randn(4, 9, d_x)
    assert not isinstance(model.drift.encoded(x), LinearInputs)
    narrow = build_model("antisymmetric", IN_LOOP_MAX_CHANNELS, 3, hidden_size=8)
    assert isinstance(narrow.drift.encoded(torch.randn(4, 9, IN_LOOP_MAX_CHANNELS)), LinearInputs)
    y1, gx1, g1 = _run(model, x, True, None, fused=True)
    y2, gx2, g2 = _run(model, x, True, None, fused=False)
    assert _rel(y1, y2) < 1e-5 and _rel(gx1, gx2) < 1e-5
    for key in g2:
        assert _rel(g1[key], g2[key]) < 1e-5, key


@pytest.mark.parametrize("name", ["lipschitz", "antisymmetric", "antisymmetric_gated", "cornn", "exprnn"])
@pytest.mark.parametrize("noise", ["none", "research", "sde"])
@pytest.mark.parametrize("padded", [False, True])
def test_every_state_on_the_engine_equals_reference_loop(name, noise, padded):
    """integrate(..., return_states=True) on the cell engine: the states h_0..h_M and the
    gradients of a loss on every step (x, h0 and every parameter) equal autograd through the
    reference loop with the same noise."""
    torch.manual_seed(0)
    model = build_model(name, 3, 4, hidden_size=16, **NOISE[noise])
    drift = model.drift
    x = torch.randn(5, 19, 3)
    lengths = torch.tensor([19, 5, 13, 1, 19]) if padded else None
    probe = torch.randn(5, 20, drift.hidden_size)
    scheme = model.scheme if noise != "none" else None
    results = []
    for backend in ("cells", "loop"):
        model.zero_grad()
        xx = x.clone().requires_grad_()
        h0 = (0.1 * torch.randn(5, drift.hidden_size, generator=torch.Generator().manual_seed(1))).requires_grad_()
        states = integrate(drift, h0, drift.encoded(xx) if backend == "cells" else drift.encode(xx), model.step_size,
                           scheme, noise != "none", torch.Generator().manual_seed(3), return_states=True,
                           lengths=lengths, backend=backend)
        (states * probe).sum().backward()
        grads = {k: v.grad.clone() for k, v in model.named_parameters() if v.grad is not None}
        results.append((states.detach(), xx.grad, h0.grad, grads))
    (s1, gx1, gh1, g1), (s2, gx2, gh2, g2) = results
    assert s1.shape == (5, 20, drift.hidden_size)
    assert _rel(s1, s2) < 1e-5
    assert _rel(gx1, gx2) < 1e-5 and _rel(gh1, gh2) < 1e-5
    assert set(g1) == set(g2) and g2
    for key in g2:
        assert _rel(g1[key], g2[key]) < 1e-5, key


def test_states_without_grad_keep_every_step():
    """Under no_grad the engine still writes every state when they are asked for."""
    torch.manual_seed(0)
    model = build_model("lipschitz", 2, 3, hidden_size=8)
    x = torch.randn(3, 9, 2)
    with torch.no_grad():
        fast = model.hidden_states(x)
        model.fused = False
        slow = model.hidden_states(x)
    assert fast.shape == (3, 10, 8) and _rel(fast, slow) < 1e-5


def test_cell_op_scalar_columns_match_the_header():
    """The packed per-member columns the Python side writes are the ones csrc/forms.h declares,
    and every keyword the Python side passes is an argument of the registered op."""
    from noisyrnn.engine.build import kernels
    from noisyrnn.engine.forms import MEMBER_INTS, MEMBER_REALS

    assert MEMBER_INTS == {"kind": 0, "key_u": 1, "key_n": 2}
    assert list(MEMBER_REALS) == ["mscale", "mshift", "add", "s1", "s2", "gamma", "eps", "ystep"]
    assert list(MEMBER_REALS.values()) == list(range(8))
    ops = kernels()
    if ops is None:
        pytest.skip("no C++ engine")
    names = [a.name for a in ops.cells_forward.default._schema.arguments]
    assert names[-4:] == ["lengths", "form", "member_ints", "member_reals"]
    names = [a.name for a in ops.cells_backward.default._schema.arguments]
    assert names[2] == "g_out" and names[-4:] == ["lengths", "form", "member_ints", "member_reals"]


@pytest.mark.parametrize("form", ["lipschitz", "cornn", "modrelu"])
def test_members_output_sequences_together_equal_each_alone(form):
    """Seed-batched members in outputs mode: every state and every gradient of S = 3 members in one
    C++ call equal each member run alone (different weights, noise kinds, lengths)."""
    from noisyrnn.engine.cells import FORMS, CellSpec, LoopNoise, cell_recurrence
    from noisyrnn.engine.workspace import Workspace

    torch.manual_seed(4)
    S, M, B, N = 3, 10, 4, 6
    H = 2 * N if form == "cornn" else N
    P = {"lipschitz": 2 * N, "cornn": N, "modrelu": N}[form]
    u, h0 = torch.randn(S, B, M, N), 0.1 * torch.randn(S, B, H)
    w, dt = 0.3 * torch.randn(S, H, P), torch.full((S, 1), 0.1)
    bias = 0.01 * torch.randn(S, N) if form == "modrelu" else torch.empty(S, 0)
    noise = (LoopNoise("research", 0.2, 0.8, 0.1, key_u=1, key_n=2), LoopNoise("eq4", s1=0.3, s2=0.2, key_n=3),
             LoopNoise("deterministic"))
    lengths = (torch.tensor([10, 3, 7, 10]), torch.empty(0, dtype=torch.int64), torch.tensor([1, 10, 10, 5]))
    probe = torch.randn(S, M, B, H)

    def run(idx):
        spec = CellSpec(FORMS[form], tuple(noise[i] for i in idx), (0.5,) * len(idx), (0.3,) * len(idx),
                        (0.1,) * len(idx), tuple(lengths[i] for i in idx))
        leaves = [t[idx].clone().requires_grad_() for t in (u, h0, w)]
        out = cell_recurrence(leaves[0], leaves[1], leaves[2], dt[idx], bias[idx], spec, Workspace(), outputs=True)
        (out * probe[idx]).sum().backward()
        return [out.detach()] + [t.grad for t in leaves]

    together = run([0, 1, 2])
    alone = [run([s]) for s in range(S)]
    for k, name in enumerate(["states", "u", "h0", "w"]):
        b = torch.cat([a[k] for a in alone])
        assert (together[k] - b).norm() <= 1e-6 * b.norm(), name
