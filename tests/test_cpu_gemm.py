"""The cell engine's own GEMM (noisyrnn.engine (csrc/gemm.h)) against float64 products, and the engine
built on it against the reference loop at shapes that exercise every tile remainder."""

import contextlib

import pytest
import torch

from noisyrnn import build_model
from noisyrnn.engine.build import kernels

ops = kernels()
pytestmark = pytest.mark.usefixtures("engine")  # fails where a compiler exists but the engine did not build


@contextlib.contextmanager
def threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("K, M, N", [(1, 1, 1), (7, 13, 33), (300, 25, 17), (513, 12, 64), (256, 128, 256),
                                     (1000, 30, 95), (0, 3, 5)])
def test_gemm_tn_equals_the_float64_product(K, M, N):
    g = torch.Generator().manual_seed(K + M + N)
    a = [torch.randn(K, M, generator=g) for _ in range(2)]
    b = [torch.randn(K, N, generator=g) for _ in range(2)]
    out = [torch.full((M, N), float("nan")) for _ in range(2)]
    ops.gemm_tn(a, b, out)
    for ai, bi, oi in zip(a, b, out):
        exact = ai.double().T @ bi.double()
        # float32 accumulation over K terms: error <= K eps sum_k |a_ik b_kj|
        bound = (ai.double().abs().T @ bi.double().abs()) * (max(K, 1) * 2 ** -23) + 1e-30
        assert bool(((oi.double() - exact).abs() <= bound).all())


def test_gemm_tn_rejects_mismatched_shapes():
    with pytest.raises(RuntimeError, match="gemm_tn: shapes"):
        ops.gemm_tn([torch.zeros(4, 3)], [torch.zeros(5, 2)], [torch.zeros(3, 2)])


def _grads(model, x, lengths):
    model.zero_grad()
    xx = x.clone().requires_grad_()
    y = model(xx, noise=True, generator=torch.Generator().manual_seed(5), lengths=lengths)
    y.square().sum().backward()
    return [y.detach(), xx.grad] + [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("name", ["lipschitz", "cornn", "exprnn"])
def test_engine_at_odd_shapes_equals_the_reference_loop(name):
    """hidden 45 (panels of 32 with a masked tail), batch 29 (tiles of 12 and a remainder of 5)."""
    torch.manual_seed(0)
    model = build_model(name, 2, 3, hidden_size=45, noise="research", mult_noise=0.2, add_noise=0.05)
    x, lengths = torch.randn(29, 31, 2), torch.randint(1, 32, (29,))
    model.fused = True
    fast = _grads(model, x, lengths)
    model.fused = False
    slow = _grads(model, x, lengths)
    for f, s in zip(fast, slow):
        assert float((f - s).abs().max() / s.abs().max()) < 1e-5


@pytest.mark.skipif(ops is None or ops.gemm_kernel() != "avx512", reason="ATen's BLAS depends on the thread count")
@pytest.mark.parametrize("name", ["lipschitz", "cornn"])
def test_engine_results_do_not_depend_on_the_thread_count(name):
    """Each output of the AVX-512 products is one FMA chain over k whatever the row split, so
    one thread and two threads (one model split into two row blocks) give the same bits."""
    torch.manual_seed(1)
    model = build_model(name, 2, 3, hidden_size=64, noise="research", mult_noise=0.2, add_noise=0.05)
    model.fused = True
    x = torch.randn(40, 50, 2)
    with threads(1):
        one = _grads(model, x, None)
    with threads(2):
        two = _grads(model, x, None)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


@pytest.mark.parametrize("M, K, N", [(1, 1, 1), (5, 16, 32), (29, 45, 90), (64, 128, 256), (13, 256, 45)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_nn_equals_the_float64_product(M, K, N, accumulate):
    g = torch.Generator().manual_seed(M * K + N)
    a, b, c = torch.randn(M, K, generator=g), torch.randn(K, N, generator=g), torch.randn(M, N, generator=g)
    out = c.clone()
    ops.gemm_nn(a, b, out, accumulate, 3)  # the same product three times: b is packed once
    # accumulating, the three repeats add the product to c three times
    exact = c.double() + 3 * (a.double() @ b.double()) if accumulate else a.double() @ b.double()
    bound = (a.double().abs() @ b.double().abs()) * (3 * K * 2 ** -23) + c.double().abs() * 2 ** -21 + 1e-30
    assert bool(((out.double() - exact).abs() <= bound).all())
