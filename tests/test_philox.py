"""The Philox noise streams: published known answers, C++ against pure torch, statistics."""

import pytest
import torch
from scipy import stats

from noisyrnn.engine import build, philox

# Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter[4], key[2], result[4]
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.fixture
def no_cpp(monkeypatch):
    monkeypatch.setitem(build._BUILT, "ops", None)


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_pure_torch_philox_matches_the_published_known_answers(counter, key, expected):
    out = philox.philox4x32(torch.tensor([counter], dtype=torch.int64), key)[0]
    assert out.tolist() == list(expected)


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_cpp_fill_matches_the_published_known_answers(counter, key, expected, engine):
    out = torch.empty(64, dtype=torch.int32)
    philox.fill_(out, key[0] | key[1] << 32, philox.RAW, offset=counter[0] | counter[1] << 32,
                 stream=counter[2] | counter[3] << 32)
    assert [w & 0xFFFFFFFF for w in out[0::16].tolist()] == list(expected)  # word w of counter 0 is element 16w


@pytest.mark.parametrize("kind", [philox.RAW, philox.UNIFORM, philox.NORMAL])
@pytest.mark.parametrize("n", [1, 63, 64, 1001])
def test_cpp_fill_equals_the_pure_torch_path(kind, n, monkeypatch, engine):
    dtype = torch.int32 if kind == philox.RAW else torch.float32
    key = 0x1234_5678_9ABC_DEF
    fast = philox.fill_(torch.empty(n, dtype=dtype), key, kind, offset=7)
    monkeypatch.setitem(build._BUILT, "ops", None)
    slow = philox.fill_(torch.empty(n, dtype=dtype), key, kind, offset=7)
    if kind == philox.NORMAL:  # the vector log/sin/cos differ from torch's in the last bits
        assert torch.allclose(fast, slow, rtol=0, atol=2e-6)
    else:
        assert torch.equal(fast, slow)


def test_values_do_not_depend_on_the_thread_count():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = philox.fill_(torch.empty(300_001), 99, philox.NORMAL)
        torch.set_num_threads(max(2, threads))
        many = philox.fill_(torch.empty(300_001), 99, philox.NORMAL)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)


@pytest.mark.parametrize("path", ["cpp", "torch"])
def test_distributions(path, request):
    if path == "torch":
        request.getfixturevalue("no_cpp")
    gen = torch.Generator().manual_seed(0)
    n = 400_000
    z = philox.randn((n,), gen, dtype=torch.float64)
    u = philox.rand((n,), gen)
    assert z.dtype == torch.float64 and u.dtype == torch.float32
    # Kolmogorov-Smirnov against the exact laws (p-values uniform under H0; 1e-4 => 1 false alarm in 1e4)
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-4
    assert stats.kstest(u.double().numpy(), "uniform").pvalue > 1e-4
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert abs(float(stats.kurtosis(z.numpy(), fisher=False)) - 3.0) < 0.05  # std error ~0.008
    # no correlation at lags that share a counter (1: a Box-Muller pair, 16: the next word) or a block (64)
    for lag in (1, 2, 16, 32, 64):
        r = torch.corrcoef(torch.stack([z[:-lag], z[lag:]]))[0, 1]
        assert abs(float(r)) < 5 / n**0.5, lag


def test_draws_are_reproducible_from_the_generator_and_differ_between_draws():
    a = philox.randn((5, 7), torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    b = philox.randn((5, 7), g)
    c = philox.randn((5, 7), g)
    assert torch.equal(a, b) and not torch.equal(b, c)
    torch.manual_seed(11)
    d = philox.rand((4,))
    torch.manual_seed(11)
    assert torch.equal(d, philox.rand((4,)))  # no generator: torch's global one keys the stream


def test_scale_and_shift_are_applied_in_the_fill():
    plain = philox.randn((1000,), torch.Generator().manual_seed(4))
    mapped = philox.randn((1000,), torch.Generator().manual_seed(4), scale=0.3, shift=2.0)
    assert torch.allclose(mapped, 2.0 + 0.3 * plain, atol=1e-6)
    u = philox.rand((1000,), torch.Generator().manual_seed(4), scale=0.02, shift=0.98)
    assert 0.98 <= float(u.min()) and float(u.max()) <= 1.0


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2)])
def test_empty_and_scalar_shapes(shape):
    assert philox.randn(shape, torch.Generator().manual_seed(0)).shape == torch.Size(shape)


def test_other_float_dtypes_are_drawn_in_float32_and_rounded():
    a = philox.randn((50,), torch.Generator().manual_seed(2), dtype=torch.bfloat16)
    b = philox.randn((50,), torch.Generator().manual_seed(2))
    assert a.dtype == torch.bfloat16 and torch.equal(a, b.to(torch.bfloat16))


def test_fill_rejects_non_contiguous_or_non_cpu_tensors():
    with pytest.raises(ValueError, match="contiguous CPU"):
        philox.fill_(torch.empty(4, 4).T, 1, philox.NORMAL)
