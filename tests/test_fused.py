"""The hand-written recurrence Function against the generic autograd loop."""

import pytest
import torch

from noisyrnn import build_model
from noisyrnn.engine.aten import lipschitz_recurrence

CASES = [
    ("lipschitz", {}, False),
    ("nrnn", {"noise": "research", "mult_noise": 0.3, "add_noise": 0.1}, True),
    ("nrnn", {"noise": "research", "mult_noise": 0.3, "add_noise": 0.1}, False),
    ("nrnn", {"noise": "sde", "sigma1": 0.5, "sigma2": 0.0, "learn_step": False}, True),
    ("nrnn", {"noise": "sde", "sigma1": 0.0, "sigma2": 2.0, "learn_step": True}, True),
    ("nrnn", {"noise": "sde", "sigma1": 0.4, "sigma2": 1.0, "learn_step": True}, True),
]


def loss_and_grads(model, x, y, noise):
    model.zero_grad()
    out = model(x, noise=noise, generator=torch.Generator().manual_seed(7))
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("name,params,noise", CASES)
def test_fused_equals_generic_loop(name, params, noise):
    torch.manual_seed(0)
    model = build_model(name, 3, 4, hidden_size=16, step=0.1, init_std=3.0, **params).double()
    x = torch.randn(5, 20, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (5,))
    model.fused = True
    loss_f, grads_f = loss_and_grads(model, x, y, noise)
    model.fused = False
    loss_g, grads_g = loss_and_grads(model, x, y, noise)
    assert torch.allclose(loss_f, loss_g, rtol=1e-12)
    for k in grads_g:
        assert torch.allclose(grads_f[k], grads_g[k], rtol=1e-10, atol=1e-12), k


def test_fused_float32_within_1e5_of_generic():
    torch.manual_seed(1)
    model = build_model("nrnn", 1, 10, hidden_size=64, step=0.03)
    x = torch.randn(32, 100, 1)
    y = torch.randint(0, 10, (32,))
    model.fused = True
    loss_f, grads_f = loss_and_grads(model, x, y, True)
    model.fused = False
    loss_g, grads_g = loss_and_grads(model, x, y, True)
    assert abs(loss_f - loss_g) <= 1e-5 * abs(loss_g)
    for k in grads_g:
        assert (grads_f[k] - grads_g[k]).norm() <= 1e-5 * grads_g[k].norm() + 1e-7, k


def test_function_gradcheck_with_model_axis():
    torch.manual_seed(2)
    S, M, B, N = 2, 4, 3, 5
    u = torch.randn(S, B, M, N, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(S, B, N, dtype=torch.float64, requires_grad=True)
    w = (0.5 * torch.randn(S, N, 2 * N, dtype=torch.float64)).requires_grad_()
    c = (0.1 + 0.05 * torch.rand(M, S, B, N, dtype=torch.float64)).requires_grad_()
    n = (0.1 * torch.randn(M, S, B, N, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lipschitz_recurrence, (u, h0, w, c, n))
    c_unit = (0.1 + 0.05 * torch.rand(1, 1, 1, N, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: lipschitz_recurrence(*a, None), (u, h0, w, c_unit))


def test_matches_research_style_eager_loop_noise_off():
    """Loss and gradients equal the research-code-style eager loop to 1e-5 relative."""
    from research_style import ResearchStyleNRNN

    torch.manual_seed(3)
    ours = build_model("nrnn", 1, 10, hidden_size=32, step=0.05, init_std=2.0, gamma_a=0.001, gamma_w=0.001)
    ref = ResearchStyleNRNN(1, 32, 10).load_from(ours)
    x, y = torch.rand(16, 60, 1), torch.randint(0, 10, (16,))
    loss_ours = torch.nn.functional.cross_entropy(ours(x), y)
    loss_ref = torch.nn.functional.cross_entropy(ref(x), y)
    loss_ours.backward()
    loss_ref.backward()
    assert abs(loss_ours.item() - loss_ref.item()) <= 1e-5 * abs(loss_ref.item())
    pairs = [(ours.drift.B.grad, ref.B.grad.T), (ours.drift.C.grad, ref.C.grad.T),
             (ours.drift.encoder.weight.grad, ref.E.weight.grad), (ours.decoder.weight.grad, ref.D.weight.grad),
             (ours.step_size.grad[0], ref.d.grad)]
    for a, b in pairs:
        assert (a - b).norm() <= 1e-5 * b.norm()


def test_noise_distribution_matches_research_style_loop():
    """With noise on, final states have the same mean and spread as per-step-drawn noise."""
    from research_style import ResearchStyleNRNN

    torch.manual_seed(4)
    ours = build_model("nrnn", 1, 2, hidden_size=8, step=0.1, mult_noise=0.5, add_noise=0.1, init_std=3.0,
                       gamma_a=0.001, gamma_w=0.001)
    ref = ResearchStyleNRNN(1, 8, 2, mult_noise=0.5, add_noise=0.1).load_from(ours)
    x = torch.rand(1, 30, 1).expand(20000, 30, 1)
    with torch.no_grad():
        a = ours(x, noise=True, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(1)
        b = ref(x, noise=True)
    n = a.shape[0]
    for k in range(2):
        sa, sb = a[:, k].std(), b[:, k].std()
        assert abs(a[:, k].mean() - b[:, k].mean()) < 6 * (sa**2 / n + sb**2 / n) ** 0.5
        assert abs(sa / sb - 1) < 0.05


@pytest.mark.parametrize("name,params,noise", CASES)
def test_cpp_cell_engine_equals_the_aten_loop_in_float32(name, params, noise, engine):
    """The C++ cell engine (noisyrnn.engine.cells, noise drawn in its loop) against the
    fused Python loop of ATen calls with pre-drawn noise, for every noise scheme and step
    layout; both float32 on the CPU."""
    from noisyrnn.engine import use_backend

    torch.manual_seed(0)
    model = build_model(name, 3, 4, hidden_size=16, step=0.1, init_std=3.0, **params)
    x = torch.randn(5, 20, 3)
    y = torch.randint(0, 4, (5,))
    loss_c, grads_c = loss_and_grads(model, x, y, noise)
    with use_backend("aten"):
        loss_p, grads_p = loss_and_grads(model, x, y, noise)
    assert abs(loss_c - loss_p) <= 1e-6 * abs(loss_p)
    for k in grads_p:
        assert (grads_c[k] - grads_p[k]).norm() <= 1e-5 * grads_p[k].norm() + 1e-7, k


def test_prepared_gpu_benchmark_runs_on_the_cpu(tmp_path):
    """benchmarks/bench_gpu.py (the speed issue's GPU check) smoke-runs at tiny shapes on the CPU."""
    import json

    from conftest import run_script

    out = tmp_path / "gpu.json"
    run_script("benchmarks/bench_gpu.py", "--device", "cpu", "--B", "8", "--T", "6", "--N", "16", "--members", "2",
               "--steps", "1", "--json", str(out))
    rec = json.loads(out.read_text())
    assert [r["noise"] for r in rec["rows"]] == [False, True]
    assert all(r["S1_ms"] > 0 and r["S2_ms"] > 0 for r in rec["rows"])
    # what it times is right: the batched ensemble computes what its models compute alone
    assert rec["ensemble_max_abs_diff"] < 1e-5


def test_each_model_owns_its_buffers_and_threads_may_share_a_model():
    """No module-global workspace: a model reuses its own buffers, another model has its own, and
    two threads running one model at once get the results of running it twice in turn."""
    import copy
    import threading

    from noisyrnn import build_model

    torch.manual_seed(0)
    model = build_model("lipschitz", 2, 3, hidden_size=8)
    other = copy.deepcopy(model)
    assert model.workspace is not other.workspace
    x = [torch.randn(5, 30, 2) for _ in range(2)]

    def grads(inp):
        model.zero_grad()
        model(inp).square().sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    expected = [model(inp).detach() for inp in x]
    assert model.workspace.free  # buffers handed back to this model's workspace
    assert not other.workspace.free
    out = [None, None]

    def run(i):
        with torch.no_grad():
            out[i] = model(x[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(o, e) for o, e in zip(out, expected))
    assert all(torch.isfinite(g).all() for g in grads(x[0]))
