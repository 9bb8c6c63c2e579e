"""Optional C++ loops for the fused recurrence on the CPU (float32), and the Philox noise fill.

Measured on the project's 2-core machine (``benchmarks/bench_cpp_loop.py``): per step the
Python loop of :mod:`noisyrnn.fused` runs one GEMM and four small elementwise kernels, and
those kernels, not Python dispatch, cost most of the time above the GEMMs. Here each step
is one GEMM (ATen) plus a single fused, vectorised pass over the (B, N) values, for the
forward (``z = W h + u``, ``t = tanh z``, ``f = alpha A h + t``, ``h' = h + c f + n``) and for
the backward (``df = c g``, ``dz = df (1 - t^2)``, the gradient of c, then one GEMM).

The extension is compiled on first use with the machine's C++ compiler
(``torch.utils.cpp_extension.load_inline``, about 24 s once, cached by torch in
``~/.cache/torch_extensions``) with ``-O3 -march=native -ffast-math -fopenmp``: glibc's vector
``tanhf``, and OpenMP for the parallel tasks (the libgomp torch itself loads, so one thread pool). Results agree with the ATen path to float32 rounding (tested). If no
compiler is available, compilation fails, or ``NOISYRNN_NO_CPP=1`` is set, :func:`kernels`
returns None and the Python loop runs instead.

Work is split into tasks of (model, block of batch rows) run in parallel on torch's intra-op
threads, each task's GEMMs single-threaded: one model's batch is split into one block per
thread, an ensemble with at least as many members as threads runs one task per member. Per
step the GEMMs are small (B x N by N x 2N), and splitting each of them across threads costs
a synchronisation per step; independent row blocks need none (measured: 147 -> 137 ms per
noise-free pixel-MNIST training step on 2 cores). Results depend on the thread count only
through float32 rounding.

``philox_fill`` writes Philox4x32-10 words, uniforms or Box-Muller normals in parallel (each
value a function of its index only, so any thread count gives the same numbers); it serves
:mod:`noisyrnn.philox`, whose pure-torch fallback computes the same words.
"""

from __future__ import annotations

import os
import warnings

_SOURCE = r"""
#include <ATen/ATen.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {
// c has shape (Mc, Bc, Nc) with Mc in {1, M}, Bc in {1, B}, Nc in {1, N}, contiguous
inline const float* c_row(const float* c, int64_t m, int64_t b, int64_t Mc, int64_t Bc, int64_t Nc) {
  return c + (Mc > 1 ? m * Bc * Nc : 0) + (Bc > 1 ? b * Nc : 0);
}
}

// One row (b) of a forward step; templated so that every variant is a branch-free,
// vectorisable loop (a runtime test inside the loop stops GCC from vectorising tanh).
template <bool KEEP_F, bool HAS_N, bool VEC_C>
inline void forward_row(const float* __restrict pa, const float* __restrict pw, const float* __restrict ub,
                        const float* __restrict hb, const float* __restrict cb, const float* __restrict nb,
                        float* __restrict tb, float* __restrict fb, float* __restrict ob, int64_t N) {
  const float cs = cb[0];
#pragma omp simd
  for (int64_t k = 0; k < N; ++k) {
    const float t = std::tanh(pw[k] + ub[k]);
    const float f = pa[k] + t;
    tb[k] = t;
    if constexpr (KEEP_F) fb[k] = f;
    float base = hb[k];
    if constexpr (HAS_N) base += nb[k];
    if constexpr (VEC_C) ob[k] = base + cb[k] * f; else ob[k] = base + cs * f;
  }
}

template <bool KEEP_F, bool HAS_N, bool VEC_C>
void forward_loop(at::Tensor states, at::Tensor tanhs, at::Tensor drifts, at::Tensor u, at::Tensor w,
                  at::Tensor c, at::Tensor n, at::Tensor p, int64_t b0, int64_t b1) {
  const int64_t M = tanhs.size(0), B = tanhs.size(1), N = tanhs.size(2);
  const int64_t Mc = c.size(0), Bc = c.size(1), Nc = c.size(2);
  const float* C = c.data_ptr<float>();
  const float* U = u.data_ptr<float>();
  const float* P = p.data_ptr<float>();
  float* S = states.data_ptr<float>();
  float* T = tanhs.data_ptr<float>();
  float* F = KEEP_F ? drifts.data_ptr<float>() : nullptr;
  const float* NN = HAS_N ? n.data_ptr<float>() : nullptr;
  at::Tensor p_rows = p.narrow(0, b0, b1 - b0);
  for (int64_t m = 0; m < M; ++m) {
    at::mm_out(p_rows, states.select(0, m).narrow(0, b0, b1 - b0), w);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t row = m * B * N + b * N;
      forward_row<KEEP_F, HAS_N, VEC_C>(P + b * 2 * N, P + b * 2 * N + N, U + (b * M + m) * N, S + row,
                                        c_row(C, m, b, Mc, Bc, Nc), HAS_N ? NN + row : nullptr, T + row,
                                        KEEP_F ? F + row : nullptr, S + row + B * N, N);
    }
  }
}

// states (M+1, B, N) with states[0] = h0; tanhs (M, B, N); drifts (M, B, N) or empty;
// u (B, M, N); w (N, 2N); c (Mc, Bc, Nc); n (M, B, N) or empty; p (B, 2N) scratch.
// Rows b0 <= b < b1 of the batch only (rows are independent until the weight gradient).
void forward_one(at::Tensor states, at::Tensor tanhs, at::Tensor drifts, at::Tensor u, at::Tensor w,
                 at::Tensor c, at::Tensor n, at::Tensor p, int64_t b0, int64_t b1) {
  const bool keep_f = drifts.numel() > 0, has_n = n.numel() > 0, vec_c = c.size(2) > 1;
  const int code = (keep_f ? 4 : 0) + (has_n ? 2 : 0) + (vec_c ? 1 : 0);
  switch (code) {
    case 0: forward_loop<false, false, false>(states, tanhs, drifts, u, w, c, n, p, b0, b1); break;
    case 1: forward_loop<false, false, true>(states, tanhs, drifts, u, w, c, n, p, b0, b1); break;
    case 2: forward_loop<false, true, false>(states, tanhs, drifts, u, w, c, n, p, b0, b1); break;
    case 3: forward_loop<false, true, true>(states, tanhs, drifts, u, w, c, n, p, b0, b1); break;
    case 4: forward_loop<true, false, false>(states, tanhs, drifts, u, w, c, n, p, b0, b1); break;
    case 5: forward_loop<true, false, true>(states, tanhs, drifts, u, w, c, n, p, b0, b1); break;
    case 6: forward_loop<true, true, false>(states, tanhs, drifts, u, w, c, n, p, b0, b1); break;
    default: forward_loop<true, true, true>(states, tanhs, drifts, u, w, c, n, p, b0, b1); break;
  }
}

template <bool VEC_C>
inline void backward_row(const float* __restrict gb, const float* __restrict tb, const float* __restrict cb,
                         float* __restrict da, float* __restrict dz, int64_t N) {
  const float cs = cb[0];
#pragma omp simd
  for (int64_t k = 0; k < N; ++k) {
    const float df = (VEC_C ? cb[k] : cs) * gb[k];
    da[k] = df;
    dz[k] = df * (1.0f - tb[k] * tb[k]);
  }
}

// g_all (rows, B, N) with g_all[M % rows] = dL/dh_M; dp_all (M, B, 2N) out;
// d_c (M, B, N) per step, or (B, N) accumulated, or empty; wt (2N, N)
void backward_one(at::Tensor g_all, at::Tensor dp_all, at::Tensor tanhs, at::Tensor drifts, at::Tensor wt,
                  at::Tensor c, at::Tensor d_c, int64_t b0, int64_t b1) {
  const int64_t M = tanhs.size(0), B = tanhs.size(1), N = tanhs.size(2), rows = g_all.size(0);
  const int64_t Mc = c.size(0), Bc = c.size(1), Nc = c.size(2);
  const bool want_c = d_c.numel() > 0, dc_per_step = want_c && d_c.dim() == 3;
  const float* C = c.data_ptr<float>();
  for (int64_t m = M - 1; m >= 0; --m) {
    at::Tensor g = g_all.select(0, (m + 1) % rows);
    const float* G = g.data_ptr<float>();
    float* DP = dp_all.data_ptr<float>() + m * B * 2 * N;
    const float* T = tanhs.data_ptr<float>() + m * B * N;
    for (int64_t b = b0; b < b1; ++b) {
      const float* cb = c_row(C, m, b, Mc, Bc, Nc);
      if (Nc > 1) backward_row<true>(G + b * N, T + b * N, cb, DP + b * 2 * N, DP + b * 2 * N + N, N);
      else backward_row<false>(G + b * N, T + b * N, cb, DP + b * 2 * N, DP + b * 2 * N + N, N);
    }
    if (want_c) {
      const float* __restrict F = drifts.data_ptr<float>() + m * B * N;
      float* __restrict DC = d_c.data_ptr<float>() + (dc_per_step ? m * B * N : 0);
      if (dc_per_step) {
#pragma omp simd
        for (int64_t i = b0 * N; i < b1 * N; ++i) DC[i] = G[i] * F[i];
      } else {
#pragma omp simd
        for (int64_t i = b0 * N; i < b1 * N; ++i) DC[i] += G[i] * F[i];
      }
    }
    at::Tensor out = g_all.select(0, m % rows).narrow(0, b0, b1 - b0);
    at::addmm_out(out, g.narrow(0, b0, b1 - b0), dp_all.select(0, m).narrow(0, b0, b1 - b0), wt);
  }
}

// ---- Philox4x32-10 (Salmon et al., SC'11), the counter-based generator of noisyrnn.philox ----
namespace philox {
constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
constexpr int LANES = 16;  // counters per block: the rounds vectorise across them

// x[w][j] = word w of Philox(counter = (first + j, stream), key)
inline void block(uint64_t first, uint64_t stream, uint64_t key, uint32_t (&x)[4][LANES]) {
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int j = 0; j < LANES; ++j) {
    const uint64_t c = first + static_cast<uint64_t>(j);
    x[0][j] = static_cast<uint32_t>(c);
    x[1][j] = static_cast<uint32_t>(c >> 32);
    x[2][j] = static_cast<uint32_t>(stream);
    x[3][j] = static_cast<uint32_t>(stream >> 32);
  }
  for (int r = 0; r < 10; ++r) {
#pragma omp simd
    for (int j = 0; j < LANES; ++j) {
      const uint64_t p0 = static_cast<uint64_t>(M0) * x[0][j], p1 = static_cast<uint64_t>(M1) * x[2][j];
      const uint32_t y0 = static_cast<uint32_t>(p1 >> 32) ^ x[1][j] ^ k0;
      const uint32_t y2 = static_cast<uint32_t>(p0 >> 32) ^ x[3][j] ^ k1;
      x[1][j] = static_cast<uint32_t>(p1);
      x[3][j] = static_cast<uint32_t>(p0);
      x[0][j] = y0;
      x[2][j] = y2;
    }
    k0 += W0;
    k1 += W1;
  }
}

// kind 1: uniform [0, 1) from the top 24 bits; kind 2: standard normal, Box-Muller on the
// word pairs (0, 1) and (2, 3): r = sqrt(-2 log u1) with u1 in (0, 1], theta = 2 pi u2
template <int KIND>
inline void transform(const uint32_t (&x)[4][LANES], float (&v)[4][LANES]) {
  constexpr float SCALE = 1.0f / 16777216.0f, TWO_PI = 6.283185307179586f;
  if constexpr (KIND == 1) {
    for (int w = 0; w < 4; ++w)
#pragma omp simd
      for (int j = 0; j < LANES; ++j) v[w][j] = static_cast<float>(x[w][j] >> 8) * SCALE;
  } else {
    for (int w = 0; w < 4; w += 2) {
      float r[LANES], theta[LANES];
#pragma omp simd
      for (int j = 0; j < LANES; ++j) {
        r[j] = std::sqrt(-2.0f * std::log(static_cast<float>((x[w][j] >> 8) + 1u) * SCALE));
        theta[j] = TWO_PI * (static_cast<float>(x[w + 1][j] >> 8) * SCALE);
      }
#pragma omp simd
      for (int j = 0; j < LANES; ++j) v[w][j] = r[j] * std::cos(theta[j]);
#pragma omp simd
      for (int j = 0; j < LANES; ++j) v[w + 1][j] = r[j] * std::sin(theta[j]);
    }
  }
}

// Block b holds counters 16b .. 16b+15; element 64b + 16w + j gets word w of counter 16b + j.
template <int KIND, typename T>
void fill(T* out, int64_t n, uint64_t key, uint64_t offset, uint64_t stream, float scale, float shift) {
  constexpr int64_t PER_BLOCK = 4 * LANES;
  const int64_t blocks = (n + PER_BLOCK - 1) / PER_BLOCK;
  at::parallel_for(0, blocks, 64, [&](int64_t b0, int64_t b1) {  // values depend on the index only
    uint32_t x[4][LANES];
    float v[4][LANES];
    for (int64_t b = b0; b < b1; ++b) {
      block(offset + static_cast<uint64_t>(b) * LANES, stream, key, x);
      const int64_t base = b * PER_BLOCK, count = std::min<int64_t>(PER_BLOCK, n - base);
      T* o = out + base;
      if constexpr (KIND == 0) {
        const uint32_t* flat = &x[0][0];
        for (int64_t e = 0; e < count; ++e) o[e] = static_cast<T>(flat[e]);
      } else {
        transform<KIND>(x, v);
        const float* flat = &v[0][0];
#pragma omp simd
        for (int64_t e = 0; e < count; ++e) o[e] = static_cast<T>(shift + scale * flat[e]);
      }
    }
  });
}
}  // namespace philox

// out (any shape, contiguous, CPU): the stream of counters (offset + i, stream) under key, laid
// out in blocks of 16 counters (see fill); uniforms and normals as shift + scale * value
void philox_fill(at::Tensor out, int64_t key, int64_t offset, int64_t stream, int64_t kind, double scale,
                 double shift) {
  const float a = static_cast<float>(scale), b = static_cast<float>(shift);
  TORCH_CHECK(out.is_contiguous(), "philox_fill: out must be contiguous");
  const int64_t n = out.numel();
  const uint64_t k = static_cast<uint64_t>(key), o = static_cast<uint64_t>(offset), s = static_cast<uint64_t>(stream);
  if (kind == 0) {
    TORCH_CHECK(out.scalar_type() == at::kInt, "philox_fill: raw words need an int32 tensor");
    philox::fill<0>(out.data_ptr<int32_t>(), n, k, o, s, 1.0f, 0.0f);
  } else {
    TORCH_CHECK(kind == 1 || kind == 2, "philox_fill: kind must be 0, 1 or 2");
    if (out.scalar_type() == at::kFloat) {
      if (kind == 1) philox::fill<1>(out.data_ptr<float>(), n, k, o, s, a, b);
      else philox::fill<2>(out.data_ptr<float>(), n, k, o, s, a, b);
    } else {
      TORCH_CHECK(out.scalar_type() == at::kDouble, "philox_fill: float32 or float64 out");
      if (kind == 1) philox::fill<1>(out.data_ptr<double>(), n, k, o, s, a, b);
      else philox::fill<2>(out.data_ptr<double>(), n, k, o, s, a, b);
    }
  }
}

// S models (one list entry each), split into tasks of (member, block of batch rows) run in
// parallel on the intra-op threads, every task's GEMMs single-threaded inside the parallel
// region: no thread synchronisation per step, which costs more than it saves at these
// small per-step GEMMs. With S >= threads each member is one task; one model is split into
// `threads` row blocks.
template <typename F>
void for_each_task(int64_t S, int64_t B, const F& body) {
  const int64_t threads = at::get_num_threads();
  const int64_t blocks = S >= threads ? 1 : std::min<int64_t>(B, (threads + S - 1) / S);
  at::parallel_for(0, S * blocks, 1, [&](int64_t t0, int64_t t1) {
    at::NoGradGuard no_grad;  // grad mode is thread-local: worker threads start with it on
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t s = t / blocks, k = t % blocks;
      body(s, k * B / blocks, (k + 1) * B / blocks);
    }
  });
}

void nrnn_forward(at::TensorList states, at::TensorList tanhs, at::TensorList drifts, at::TensorList u,
                  at::TensorList w, at::TensorList c, at::TensorList n, at::TensorList p) {
  for_each_task(static_cast<int64_t>(states.size()), tanhs[0].size(1), [&](int64_t s, int64_t b0, int64_t b1) {
    forward_one(states[s], tanhs[s], drifts[s], u[s], w[s], c[s], n[s], p[s], b0, b1);
  });
}

void nrnn_backward(at::TensorList g_all, at::TensorList dp_all, at::TensorList tanhs, at::TensorList drifts,
                   at::TensorList wt, at::TensorList c, at::TensorList d_c) {
  for_each_task(static_cast<int64_t>(g_all.size()), tanhs[0].size(1), [&](int64_t s, int64_t b0, int64_t b1) {
    backward_one(g_all[s], dp_all[s], tanhs[s], drifts[s], wt[s], c[s], d_c[s], b0, b1);
  });
}

TORCH_LIBRARY(noisyrnn_cpu, lib) {
  lib.def("forward(Tensor(a!)[] states, Tensor(b!)[] tanhs, Tensor(c!)[] drifts, Tensor[] u, Tensor[] w, "
          "Tensor[] c, Tensor[] n, Tensor(d!)[] p) -> ()");
  lib.def("backward(Tensor(a!)[] g_all, Tensor(b!)[] dp_all, Tensor[] tanhs, Tensor[] drifts, Tensor[] wt, "
          "Tensor[] c, Tensor(c!)[] d_c) -> ()");
  lib.def("philox_fill(Tensor(a!) out, int key, int offset, int stream, int kind, float scale, float shift) -> ()");
}
TORCH_LIBRARY_IMPL(noisyrnn_cpu, CPU, lib) {
  lib.impl("forward", &nrnn_forward);
  lib.impl("backward", &nrnn_backward);
  lib.impl("philox_fill", &philox_fill);
}
"""

_STATE: dict = {}


def _build_name() -> str:
    """Extension name, unique per CPU feature set: the build uses -march=native, so a cache
    shared between different machines must not hand one machine's binary to another."""
    import hashlib
    import platform

    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    digest = hashlib.sha1((platform.machine() + flags).encode()).hexdigest()[:12]
    return f"noisyrnn_cpu_kernels_v7_{digest}"


def enabled() -> bool:
    return os.environ.get("NOISYRNN_NO_CPP", "") in ("", "0")


def kernels():
    """``torch.ops.noisyrnn_cpu`` (compiling it on first use), or None if unavailable or disabled."""
    if not enabled():
        return None
    if "ops" not in _STATE:
        try:
            import torch
            from torch.utils.cpp_extension import load_inline

            load_inline(_build_name(), cpp_sources=[_SOURCE], is_python_module=False,
                        extra_cflags=["-O3", "-march=native", "-ffast-math", "-fopenmp"],
                        extra_ldflags=["-fopenmp"], verbose=False)
            _STATE["ops"] = torch.ops.noisyrnn_cpu
        except Exception as err:  # noqa: BLE001 - any build failure falls back to the ATen loop
            warnings.warn(f"noisyrnn: C++ kernels unavailable ({type(err).__name__}: {err}); "
                          "using the slower Python loop", RuntimeWarning, stacklevel=2)
            _STATE["ops"] = None
    return _STATE["ops"]
