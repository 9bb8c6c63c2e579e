"""Fast, reproducible noise for the recurrence: Philox4x32-10 counter-based streams.

Drawing the injected noise with torch's CPU generator (a Mersenne Twister) took 56 ms per
pixel-MNIST training step (a uniform and a normal (784, 128, 128) tensor), against 17 ms
here, on the project's 2-core machine (``benchmarks/bench_recurrence.py``, column n).
Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
numbers: as easy as 1, 2, 3", SC 2011; the generator torch uses on CUDA) maps a 128-bit
counter and a 64-bit key to four 32-bit words, so a whole sequence's noise is computed in
parallel and vectorised, and every value depends only on (key, its index): the same
numbers for any thread count.

Each draw takes one 63-bit key from the caller's ``torch.Generator`` (so seeding, resuming
from a saved generator state and per-member generators work as before) and fills blocks of
64 elements from 16 counters (element ``64b + 16w + j`` from word ``w`` of counter
``16b + j``, so the C++ fill stores whole vectors). Uniforms use the top 24 bits of a word
(``[0, 1)``); normals use Box-Muller on word pairs. On the CPU the fill runs in the C++
extension of :mod:`noisyrnn.engine.build`; without it, :func:`philox4x32` (pure torch,
the same words bit for bit) and the same transforms run instead. On other devices torch's
own generator draws the noise (on CUDA it is Philox already).
"""

from __future__ import annotations

import math

import torch

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF
RAW, UNIFORM, NORMAL = 0, 1, 2


def _mulhilo(a: int, b: torch.Tensor):
    """(hi, lo) 32-bit halves of a * b for a 32-bit constant a and int64 b < 2**32, without
    int64 overflow (16-bit split)."""
    a_lo, a_hi = a & 0xFFFF, a >> 16
    t_lo = b * a_lo  # < 2**48
    t_hi = b * a_hi  # < 2**48
    low = t_lo + ((t_hi & 0xFFFF) << 16)  # < 2**49
    return (t_hi >> 16) + (low >> 32), low & MASK32


def philox4x32(counter: torch.Tensor, key: tuple[int, int], rounds: int = 10) -> torch.Tensor:
    """Philox4x32-R in pure torch: ``counter`` int64 (..., 4) of 32-bit words, ``key`` two
    32-bit words; returns the (..., 4) output words (int64). The reference for the C++ fill."""
    x0, x1, x2, x3 = (counter[..., i].to(torch.int64) for i in range(4))
    k0, k1 = key
    for r in range(rounds):
        hi0, lo0 = _mulhilo(M0, x0)
        hi1, lo1 = _mulhilo(M1, x2)
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
        k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
    return torch.stack([x0, x1, x2, x3], dim=-1)


def draw_key(generator: torch.Generator | None = None) -> int:
    """One 63-bit Philox key from ``generator`` (torch's global generator if None)."""
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator)[0])


LANES = 16  # counters per block of the C++ fill


def _words(n: int, key: int, offset: int = 0, stream: int = 0) -> torch.Tensor:
    """Whole blocks of words (int64) covering the first ``n`` elements: block b holds counters
    16b..16b+15 (plus ``offset``, with ``stream`` as the counter's high words), and element
    64b + 16w + j is word w of counter 16b + j (the layout of the C++ fill)."""
    blocks = (n + 4 * LANES - 1) // (4 * LANES)
    if not 0 <= offset < 2**62:
        raise ValueError("the pure-torch Philox path takes counter offsets in [0, 2**62)")
    idx = torch.arange(blocks * LANES, dtype=torch.int64) + offset
    counter = torch.stack([idx & MASK32, (idx >> 32) & MASK32, torch.full_like(idx, stream & MASK32),
                           torch.full_like(idx, (stream >> 32) & MASK32)], dim=-1)
    words = philox4x32(counter, (key & MASK32, (key >> 32) & MASK32))  # (blocks * 16, 4)
    return words.view(blocks, LANES, 4).transpose(1, 2)  # (blocks, 4 words, 16 counters)


def _transform(words: torch.Tensor, kind: int) -> torch.Tensor:
    """Uniforms or normals from (blocks, 4, 16) words, flattened in element order."""
    scale = 1.0 / 16777216.0
    if kind == UNIFORM:
        return ((words >> 8).to(torch.float32) * scale).reshape(-1)
    u1 = ((words[:, 0::2] >> 8) + 1).to(torch.float32) * scale  # words 0 and 2: radius
    theta = (2 * math.pi) * ((words[:, 1::2] >> 8).to(torch.float32) * scale)  # words 1 and 3: angle
    r = torch.sqrt(-2.0 * torch.log(u1))
    return torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=2).reshape(-1)  # w0 cos, w1 sin, ...


def fill_(out: torch.Tensor, key: int, kind: int, offset: int = 0, stream: int = 0, scale: float = 1.0,
          shift: float = 0.0) -> torch.Tensor:
    """Write the stream (``RAW`` words into int32, ``UNIFORM`` or ``NORMAL`` values, as
    ``shift + scale * value``, into float32/64) into the contiguous CPU tensor ``out``; C++
    where available, else the pure-torch reference."""
    if not (out.device.type == "cpu" and out.is_contiguous()):
        raise ValueError("philox.fill_ needs a contiguous CPU tensor")
    from .build import kernels

    ops = kernels()
    if ops is not None:
        ops.philox_fill(out, _signed64(key), _signed64(offset), _signed64(stream), kind, float(scale), float(shift))
        return out
    n = out.numel()
    words = _words(n, key, offset, stream)
    if kind == RAW:
        values = (words - ((words >> 31) << 32)).to(torch.int32).reshape(-1)  # the same bits as int32
    else:
        values = _transform(words, kind)
        if scale != 1.0 or shift != 0.0:
            values = values.mul_(scale).add_(shift)
    out.view(-1).copy_(values[:n])
    return out


def _signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _draw(shape, generator, dtype, device, kind, scale, shift) -> torch.Tensor:
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type != "cpu":
        fn = torch.rand if kind == UNIFORM else torch.randn
        values = fn(shape, generator=generator, dtype=dtype, device=device)
        return values if scale == 1.0 and shift == 0.0 else values.mul_(scale).add_(shift)
    dtype = dtype if dtype is not None else torch.float32
    if dtype not in (torch.float32, torch.float64):  # e.g. bfloat16: draw in float32, then round
        return _draw(shape, generator, torch.float32, device, kind, scale, shift).to(dtype)
    return fill_(torch.empty(shape, dtype=dtype), draw_key(generator), kind, scale=scale, shift=shift)


def rand(shape, generator: torch.Generator | None = None, dtype=None, device=None, scale: float = 1.0,
         shift: float = 0.0) -> torch.Tensor:
    """``shift + scale * U`` with U uniform on [0, 1), like ``torch.rand``, from a Philox stream
    keyed by ``generator`` (the affine map is applied in the same pass)."""
    return _draw(shape, generator, dtype, device, UNIFORM, scale, shift)


def randn(shape, generator: torch.Generator | None = None, dtype=None, device=None, scale: float = 1.0,
          shift: float = 0.0) -> torch.Tensor:
    """``shift + scale * Z`` with Z standard normal, like ``torch.randn``, from a Philox stream
    keyed by ``generator``."""
    return _draw(shape, generator, dtype, device, NORMAL, scale, shift)
