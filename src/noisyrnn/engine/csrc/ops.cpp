// The cell engine on the CPU (float32): every drift form's step loop, forward and hand-written
// backward, the noise drawn inside the loop from Philox keys; the parallel Philox fill; and the
// GEMM ops for tests and benchmarks. Registered as torch.ops.noisyrnn_cpu.
#include <ATen/ATen.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>
#include "philox.h"
#include "gemm.h"
#include "forms.h"


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

// out = [out +] a b for a (M x K), b (K x N), out (M x N), contiguous float32: b packed once and
// the product formed `repeat` times, as a step loop does, the rows split into tasks as the
// engine splits one model (for tests and the benchmarks)
void gemm_nn(at::Tensor a, at::Tensor b, at::Tensor out, bool accumulate, int64_t repeat) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && out.dim() == 2 && a.size(1) == b.size(0) &&
              out.size(0) == a.size(0) && out.size(1) == b.size(1), "gemm_nn: shapes a (M, K), b (K, N), out (M, N)");
  TORCH_CHECK(a.is_contiguous() && b.is_contiguous() && out.is_contiguous() && a.scalar_type() == at::kFloat &&
              b.scalar_type() == at::kFloat && out.scalar_type() == at::kFloat, "gemm_nn: contiguous float32 tensors");
  TORCH_CHECK(repeat >= 1, "gemm_nn: repeat must be >= 1");
  const gemm::RightFactor factor(b);
  const int64_t K = a.size(1), N = out.size(1);
  for_each_task(1, a.size(0), [&](int64_t, int64_t i0, int64_t i1) {
    for (int64_t r = 0; r < repeat; ++r)
      factor.apply(i1 - i0, a.data_ptr<float>() + i0 * K, K, out.data_ptr<float>() + i0 * N, N, accumulate);
  });
}

// out[s] (M x N) = a[s]^T b[s] for a[s] (K x M), b[s] (K x N), contiguous float32: tasks of
// (member, block of output rows), each single-threaded (the weight gradient)
void gemm_tn(at::TensorList a, at::TensorList b, at::TensorList out) {
  const int64_t S = static_cast<int64_t>(a.size());
  TORCH_CHECK(static_cast<int64_t>(b.size()) == S && static_cast<int64_t>(out.size()) == S,
              "gemm_tn: one a, b and out per member");
  for (int64_t s = 0; s < S; ++s) {
    TORCH_CHECK(a[s].dim() == 2 && b[s].dim() == 2 && out[s].dim() == 2 && a[s].size(0) == b[s].size(0) &&
                out[s].size(0) == a[s].size(1) && out[s].size(1) == b[s].size(1),
                "gemm_tn: shapes a (K, M), b (K, N), out (M, N)");
    TORCH_CHECK(a[s].is_contiguous() && b[s].is_contiguous() && out[s].is_contiguous() &&
                a[s].scalar_type() == at::kFloat && b[s].scalar_type() == at::kFloat &&
                out[s].scalar_type() == at::kFloat, "gemm_tn: contiguous float32 tensors");
  }
  if (S == 0) return;
  for_each_task(S, out[0].size(0), [&](int64_t s, int64_t i0, int64_t i1) {
    const int64_t M = a[s].size(1), N = b[s].size(1);
    gemm::transposed_product(i1 - i0, N, a[s].size(0), a[s].data_ptr<float>() + i0, M, b[s].data_ptr<float>(), N,
                             out[s].data_ptr<float>() + i0 * N, N);
  });
}

// ---- The cell engine: every drift form, noise drawn inside the loop from Philox keys ----
// One step is h' = h + c (.) f(h, x_m) + n (the velocity z only, for coRNN), where the
// scheme's coefficients (c, n) of row (m, b) are computed here from the Philox keys, the same
// numbers noisyrnn.philox.rand / randn write into a (M, B, N) tensor (element (m B + b) N + k),
// and regenerated in the backward pass instead of being stored.
namespace cells {

struct Coef {
  int64_t kind = 0;              // 0 deterministic, 1 research (uniform factor, additive normal), 2 eq (4)-(5)
  const float* dt = nullptr;     // step sizes, dt_n = 1 or N of them
  int64_t dt_n = 1;
  float mscale = 0, mshift = 1, add = 0, s1 = 0, s2 = 0;
  uint64_t key_u = 0, key_n = 0;
  const int64_t* len = nullptr;  // per-sequence lengths, or none
  int64_t B = 0, N = 0;
  bool has_n() const { return kind == 1 ? add != 0.0f : (kind == 2 && s1 != 0.0f); }
  bool live(int64_t m, int64_t b) const { return len == nullptr || m < len[b]; }
};

// elements idx0 .. idx0+n-1 of the stream KIND (1 uniform, 2 normal) under key, counter offset 0, stream 0
template <int KIND>
inline void stream_row(uint64_t key, int64_t idx0, int64_t n, float scale, float shift, float* __restrict out) {
  constexpr int64_t PER = 4 * philox::LANES;
  uint32_t x[4][philox::LANES];
  float v[4][philox::LANES];
  const int64_t end = idx0 + n;
  int64_t i = idx0;
  while (i < end) {
    const int64_t blk = i / PER, base = blk * PER;
    philox::block(static_cast<uint64_t>(blk) * philox::LANES, 0, key, x);
    philox::transform<KIND>(x, v);
    const float* flat = &v[0][0];
    const int64_t lo = i - base, hi = std::min<int64_t>(PER, end - base);
    float* o = out + (i - idx0) - lo;
#pragma omp simd
    for (int64_t e = lo; e < hi; ++e) o[e] = shift + scale * flat[e];
    i = base + hi;
  }
}

// c and n (when n != nullptr) of row (m, b); dcdt, dndt (when given): their derivatives in the step
inline void coef_row(const Coef& k, int64_t m, int64_t b, float* __restrict c, float* __restrict n,
                     float* __restrict dcdt, float* __restrict dndt, float* __restrict tmp) {
  const int64_t N = k.N, idx0 = (m * k.B + b) * N;
  const float* __restrict dt = k.dt;
  const float d0 = dt[0];
  const bool vec = k.dt_n > 1;  // every loop below is branch-free, so it vectorises
  if (k.kind == 0) {
    if (vec) std::copy(dt, dt + N, c); else std::fill(c, c + N, d0);
    if (dcdt) { std::fill(dcdt, dcdt + N, 1.0f); std::fill(dndt, dndt + N, 0.0f); }
  } else if (k.kind == 1) {
    stream_row<1>(k.key_u, idx0, N, k.mscale, k.mshift, tmp);
    if (vec) {
#pragma omp simd
      for (int64_t i = 0; i < N; ++i) c[i] = dt[i] * tmp[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < N; ++i) c[i] = d0 * tmp[i];
    }
    if (n) stream_row<2>(k.key_n, idx0, N, k.add, 0.0f, n);
    if (dcdt) { std::copy(tmp, tmp + N, dcdt); std::fill(dndt, dndt + N, 0.0f); }
  } else {
    stream_row<2>(k.key_n, idx0, N, 1.0f, 0.0f, tmp);
    const float s1 = k.s1, s2 = k.s2;
#pragma omp simd
    for (int64_t i = 0; i < N; ++i) {
      const float d = vec ? dt[i] : d0, r = std::sqrt(d);
      c[i] = d + r * s2 * tmp[i];
    }
    if (n) {
#pragma omp simd
      for (int64_t i = 0; i < N; ++i) n[i] = std::sqrt(vec ? dt[i] : d0) * s1 * tmp[i];
    }
    if (dcdt) {
#pragma omp simd
      for (int64_t i = 0; i < N; ++i) {
        const float r2 = 2.0f * std::sqrt(vec ? dt[i] : d0);
        dcdt[i] = 1.0f + s2 * tmp[i] / r2;
        dndt[i] = s1 * tmp[i] / r2;
      }
    }
  }
}

struct Shape { int64_t M, B, N, H, P; };

// coRNN's constants (unused by the other forms)
struct Constants { float gamma = 0, eps = 0, ystep = 0; };

// one member's scalars: its noise coefficients and form constants
struct Member {
  Coef coef;
  Constants consts;
};

// One member's operands of the forward loop. states (M+1 or 2, B, H), acts (M, B, N) or empty,
// drifts (M, B, N) or empty, u (B, M, UW), w (H, P), p (B, P) scratch; bias (N) for modReLU;
// in_wt (D, uw), in_b (uw) for an in-loop projection of raw inputs u = x, else nullptr.
struct ForwardMember {
  at::Tensor states, acts, drifts, u, w, p;
  const float* bias = nullptr;
  const float* in_wt = nullptr;
  const float* in_b = nullptr;
  int64_t uw = 0;
  Coef coef;
  Constants consts;
};

// One member's operands of the backward loop (see backward_rows)
struct BackwardMember {
  at::Tensor g_all, dp_all, states, acts, drifts, wt, d_dt, d_bias;
  const float* bias = nullptr;
  const float* g_out = nullptr;
  const float* x_in = nullptr;
  int64_t D = 0, uw = 0;
  float* d_inw = nullptr;
  float* d_inb = nullptr;
  Coef coef;
  Constants consts;
};

// states (M+1, B, H), acts (M, B, N), drifts (M, B, N) or empty, u (B, M, N), w (H, P), p (B, P) scratch.
// Templated on every variant so that each row loop is branch-free and vectorises (a runtime
// test inside the loop stops GCC from vectorising tanh: measured 1.5x slower steps).
// u (B, M, UW) holds the encoded inputs, or, with a projection (ut (D, UW), ub (UW)), the raw
// inputs x (B, M, D): then u_m = x_m ut + ub is formed here, row by row, and never stored.
template <int64_t FORM, bool HAS_N, bool KEEP_F>
void forward_rows(const ForwardMember& a, int64_t b0, int64_t b1) {
  const at::Tensor &states = a.states, &acts = a.acts, &drifts = a.drifts, &u = a.u, &w = a.w, &p = a.p;
  const float *bias = a.bias, *ut = a.in_wt, *ubias = a.in_b;
  const int64_t uw = a.uw;
  const Coef& k = a.coef;
  const float gamma = a.consts.gamma, eps = a.consts.eps, ystep = a.consts.ystep;
  // states hold every step (M+1 rows, kept for the backward) or rotate (2 rows, inference);
  // acts hold every step, or are empty (inference: the activations go to a scratch row)
  const bool keep_a = acts.numel() > 0;
  const int64_t units = FORM == CORNN ? states.size(2) / 2 : states.size(2);
  const Shape s{u.size(1), u.size(0), units, states.size(2), p.size(1)};
  const int64_t N = s.N, H = s.H, rs = states.size(0), UW = u.size(2);
  float* S = states.data_ptr<float>();
  float* F = KEEP_F ? drifts.data_ptr<float>() : nullptr;
  const float* U = u.data_ptr<float>();
  float* PP = p.data_ptr<float>();
  const gemm::RightFactor wf(w);  // packed once for the M steps
  std::vector<float> scratch(4 * N + uw);
  float *c = scratch.data(), *n = c + N, *tmp = n + N, *urow = tmp + N, *arow = urow + uw;
  float* A = keep_a ? acts.data_ptr<float>() : nullptr;
  // rows in blocks of ROWS: each block's GEMM output is read back while it is still in cache
  constexpr int64_t ROWS = 128;
  for (int64_t m = 0; m < s.M; ++m)
   for (int64_t r0 = b0; r0 < b1; r0 += ROWS) {
    const int64_t r1 = std::min(b1, r0 + ROWS);
    wf.apply(r1 - r0, S + ((m % rs) * s.B + r0) * H, H, PP + r0 * s.P, s.P, false);  // p = h w
    for (int64_t b = r0; b < r1; ++b) {
      const float* __restrict h = S + ((m % rs) * s.B + b) * H;
      float* __restrict ho = S + (((m + 1) % rs) * s.B + b) * H;
      const float* __restrict pr = PP + b * s.P;
      const float* __restrict ub = U + (b * s.M + m) * UW;
      if (ut != nullptr) {  // u_m = x_m ut + ub (a linear encoder with D = UW input channels)
        const float* xr = ub;
        float* __restrict ur = urow;
#pragma omp simd
        for (int64_t i = 0; i < uw; ++i) ur[i] = ubias[i] + xr[0] * ut[i];
        for (int64_t j = 1; j < UW; ++j) {
          const float xv = xr[j];
          const float* __restrict wr = ut + j * uw;
#pragma omp simd
          for (int64_t i = 0; i < uw; ++i) ur[i] += xv * wr[i];
        }
        ub = urow;
      }
      float* __restrict ar = keep_a ? A + (m * s.B + b) * N : arow;
      float* __restrict fr = KEEP_F ? F + (m * s.B + b) * N : nullptr;
      if (!k.live(m, b)) {  // padding: the state is frozen
        std::copy(h, h + H, ho);
        std::fill(ar, ar + N, 0.0f);
        if constexpr (KEEP_F) std::fill(fr, fr + N, 0.0f);
        continue;
      }
      coef_row(k, m, b, c, HAS_N ? n : nullptr, nullptr, nullptr, tmp);
      if constexpr (FORM == GATED) {  // gated antisymmetric: f = sigmoid(W h + u_z) tanh(W h + u_h), p = [W h | W h]
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float t = std::tanh(pr[i] + ub[i]), sg = 1.0f / (1.0f + std::exp(-(pr[N + i] + ub[N + i])));
          ar[i] = t;
          if constexpr (KEEP_F) fr[i] = sg;
          if constexpr (HAS_N) ho[i] = (h[i] + n[i]) + c[i] * (sg * t); else ho[i] = h[i] + c[i] * (sg * t);
        }
      } else if constexpr (FORM == LIPSCHITZ) {  // eq (3): f = alpha A h + tanh(W h + u)
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float t = std::tanh(pr[N + i] + ub[i]), f = pr[i] + t;
          ar[i] = t;
          if constexpr (KEEP_F) fr[i] = f;
          if constexpr (HAS_N) ho[i] = (h[i] + n[i]) + c[i] * f; else ho[i] = h[i] + c[i] * f;
        }
      } else if constexpr (FORM == TANH) {  // antisymmetric RNN: f = tanh(W h + u)
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float t = std::tanh(pr[i] + ub[i]);
          ar[i] = t;
          if constexpr (HAS_N) ho[i] = (h[i] + n[i]) + c[i] * t; else ho[i] = h[i] + c[i] * t;
        }
      } else if constexpr (FORM == MODRELU) {  // expRNN: f = modReLU(Q h + u, b) - h
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float a = pr[i] + ub[i], rel = std::max(std::fabs(a) + bias[i], 0.0f);
          const float r = a > 0.0f ? rel : (a < 0.0f ? -rel : 0.0f);
          ar[i] = r;
          if constexpr (HAS_N) ho[i] = (h[i] + n[i]) + c[i] * (r - h[i]); else ho[i] = h[i] + c[i] * (r - h[i]);
        }
      } else {  // coRNN, h = (y, z): z' = z + c F + n, y' = y + dt z', F = tanh(W y + Wz z + u) - gamma y - eps z
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float t = std::tanh(pr[i] + ub[i]), y = h[i], z = h[N + i];
          const float Fv = t - gamma * y - eps * z;
          float zn;
          if constexpr (HAS_N) zn = (z + n[i]) + c[i] * Fv; else zn = z + c[i] * Fv;
          ar[i] = t;
          ho[N + i] = zn;
          ho[i] = y + ystep * zn;
        }
      }
    }
  }
}

// g_all (rows, B, H) with g_all[M % rows] = dL/dh_M; dp_all (M, B, P) out; wt (P, H);
// d_dt (B, N) and d_bias (B, N) accumulated when non-empty.
// With the raw inputs x (B, M, D) of an in-loop projection (else nullptr), dL/du_m (the tail
// uw of dp) is folded into per-row sums d_inw (B, D, uw) += x_m (x) dL/du_m and d_inb (B, uw).
// With g_out (M, B, H) (else nullptr), the gradient of the output sequence h_1..h_M is added to
// dL/dh_{m+1} as the loop walks back.
template <int64_t FORM, bool WANT_DT>
void backward_rows(const BackwardMember& a, int64_t b0, int64_t b1) {
  const at::Tensor &g_all = a.g_all, &dp_all = a.dp_all, &states = a.states, &acts = a.acts, &drifts = a.drifts;
  const at::Tensor &wt = a.wt, &d_dt = a.d_dt, &d_bias = a.d_bias;
  const float *bias = a.bias, *x_in = a.x_in, *g_out = a.g_out;
  const int64_t D = a.D, uw = a.uw;
  float *d_inw = a.d_inw, *d_inb = a.d_inb;
  const Coef& k = a.coef;
  const float gamma = a.consts.gamma, eps = a.consts.eps, ystep = a.consts.ystep;
  const Shape s{acts.size(0), acts.size(1), acts.size(2), states.size(2), dp_all.size(2)};
  const int64_t N = s.N, H = s.H, rows = g_all.size(0);
  const float* S = states.data_ptr<float>();
  const float* A = acts.data_ptr<float>();
  const float* F = drifts.numel() > 0 ? drifts.data_ptr<float>() : nullptr;
  float* DDT = d_dt.numel() > 0 ? d_dt.data_ptr<float>() : nullptr;
  float* DB = d_bias.numel() > 0 ? d_bias.data_ptr<float>() : nullptr;
  std::vector<float> scratch(4 * N);
  float *c = scratch.data(), *dcdt = c + N, *dndt = dcdt + N, *tmp = dndt + N;
  const gemm::RightFactor wr(wt);  // packed once for the M steps
  // dL/dh_m = out + dp W^T, where the pass writes out = g (lipschitz, tanh, gated) or the local part
  for (int64_t m = s.M - 1; m >= 0; --m) {
    float* G = g_all.select(0, (m + 1) % rows).data_ptr<float>();
    float* OUT = g_all.select(0, m % rows).data_ptr<float>();
    for (int64_t b = b0; b < b1; ++b) {
      if (g_out != nullptr) {  // h_{m+1} is output m: its own gradient joins dL/dh_{m+1}
        float* __restrict gm = G + b * H;
        const float* __restrict go = g_out + (m * s.B + b) * H;
#pragma omp simd
        for (int64_t i = 0; i < H; ++i) gm[i] += go[i];
      }
      const float* __restrict g = G + b * H;
      float* __restrict out = OUT + b * H;
      float* __restrict dp = dp_all.data_ptr<float>() + (m * s.B + b) * s.P;
      const float* __restrict ar = A + (m * s.B + b) * N;
      const float* __restrict h = S + (m * s.B + b) * H;
      float* __restrict ddt = WANT_DT ? DDT + b * N : nullptr;
      if (!k.live(m, b)) {
        std::fill(dp, dp + s.P, 0.0f);
        std::copy(g, g + H, out);
        continue;
      }
      coef_row(k, m, b, c, nullptr, WANT_DT ? dcdt : nullptr, WANT_DT ? dndt : nullptr, tmp);
      if constexpr (FORM == GATED) {
        const float* __restrict fr = F + (m * s.B + b) * N;  // the gate sigmoid(W h + u_z)
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float df = c[i] * g[i], t = ar[i], sg = fr[i];
          dp[i] = df * sg * (1.0f - t * t);
          dp[N + i] = df * t * sg * (1.0f - sg);
          out[i] = g[i];
          if constexpr (WANT_DT) ddt[i] += g[i] * (sg * t * dcdt[i] + dndt[i]);
        }
      } else if constexpr (FORM == LIPSCHITZ) {
        const float* __restrict fr = F + (m * s.B + b) * N;
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float df = c[i] * g[i], t = ar[i];
          dp[i] = df;
          dp[N + i] = df * (1.0f - t * t);
          out[i] = g[i];
          if constexpr (WANT_DT) ddt[i] += g[i] * (fr[i] * dcdt[i] + dndt[i]);
        }
      } else if constexpr (FORM == TANH) {
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float t = ar[i];
          dp[i] = c[i] * g[i] * (1.0f - t * t);
          out[i] = g[i];
          if constexpr (WANT_DT) ddt[i] += g[i] * (t * dcdt[i] + dndt[i]);
        }
      } else if constexpr (FORM == MODRELU) {
        float* __restrict db = DB + b * N;
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float df = c[i] * g[i], r = ar[i];
          dp[i] = r != 0.0f ? df : 0.0f;
          db[i] += r > 0.0f ? df : (r < 0.0f ? -df : 0.0f);
          out[i] = g[i] - df;
          if constexpr (WANT_DT) ddt[i] += g[i] * ((r - h[i]) * dcdt[i] + dndt[i]);
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const float gzt = g[N + i] + ystep * g[i], dF = c[i] * gzt, t = ar[i];
          dp[i] = dF * (1.0f - t * t);
          out[i] = g[i] - gamma * dF;
          out[N + i] = gzt - eps * dF;
        }
      }
    }
    if (x_in != nullptr) {
      for (int64_t b = b0; b < b1; ++b) {
        if (!k.live(m, b)) continue;
        const float* __restrict du = dp_all.data_ptr<float>() + (m * s.B + b) * s.P + (s.P - uw);
        const float* xr = x_in + (b * s.M + m) * D;
        float* __restrict db = d_inb + b * uw;
#pragma omp simd
        for (int64_t i = 0; i < uw; ++i) db[i] += du[i];
        for (int64_t j = 0; j < D; ++j) {
          const float xv = xr[j];
          float* __restrict dw = d_inw + (b * D + j) * uw;
#pragma omp simd
          for (int64_t i = 0; i < uw; ++i) dw[i] += xv * du[i];
        }
      }
    }
    // in place: out holds g (or its local part) already
    wr.apply(b1 - b0, dp_all.data_ptr<float>() + (m * s.B + b0) * s.P, s.P, OUT + b0 * H, H, true);
  }
}

// Member s's coefficients and form constants from the packed scalars (columns: forms.h)
Member read_member(const at::Tensor& dt, const at::Tensor& lengths, const int64_t* ints, const double* reals,
                   int64_t B, int64_t N) {
  TORCH_CHECK(dt.is_contiguous() && dt.scalar_type() == at::kFloat, "cells: dt must be contiguous float32");
  auto i = [&](MemberInt c) { return ints[static_cast<int64_t>(c)]; };
  auto r = [&](MemberReal c) { return static_cast<float>(reals[static_cast<int64_t>(c)]); };
  Member m;
  Coef& k = m.coef;
  k.kind = i(MemberInt::KIND);
  k.dt = dt.data_ptr<float>();
  k.dt_n = dt.numel();
  TORCH_CHECK(k.dt_n == 1 || k.dt_n == N, "cells: dt must hold 1 or N values");
  k.mscale = r(MemberReal::MSCALE);
  k.mshift = r(MemberReal::MSHIFT);
  k.add = r(MemberReal::ADD);
  k.s1 = r(MemberReal::S1);
  k.s2 = r(MemberReal::S2);
  k.key_u = static_cast<uint64_t>(i(MemberInt::KEY_U));
  k.key_n = static_cast<uint64_t>(i(MemberInt::KEY_N));
  k.len = lengths.numel() > 0 ? lengths.data_ptr<int64_t>() : nullptr;
  k.B = B;
  k.N = N;
  m.consts = {r(MemberReal::GAMMA), r(MemberReal::EPS), r(MemberReal::YSTEP)};
  return m;
}

std::vector<Member> read_members(at::TensorList dt, at::TensorList lengths, const at::Tensor& member_ints,
                                 const at::Tensor& member_reals, int64_t B, int64_t N) {
  const int64_t S = static_cast<int64_t>(dt.size());
  TORCH_CHECK(member_ints.scalar_type() == at::kLong && member_ints.is_contiguous() && member_ints.dim() == 2 &&
                  member_ints.size(0) == S && member_ints.size(1) == 3,
              "cells: member_ints must be contiguous int64 (S, 3)");
  TORCH_CHECK(member_reals.scalar_type() == at::kDouble && member_reals.is_contiguous() && member_reals.dim() == 2 &&
                  member_reals.size(0) == S && member_reals.size(1) == 8,
              "cells: member_reals must be contiguous float64 (S, 8)");
  std::vector<Member> members;
  for (int64_t s = 0; s < S; ++s)
    members.push_back(read_member(dt[s], lengths[s], member_ints.data_ptr<int64_t>() + 3 * s,
                                  member_reals.data_ptr<double>() + 8 * s, B, N));
  return members;
}

// fn(std::integral_constant<int64_t, FORM>{}) for the runtime form
template <typename Fn>
void with_form(int64_t form, const Fn& fn) {
  switch (form) {
    case LIPSCHITZ: fn(std::integral_constant<int64_t, LIPSCHITZ>{}); break;
    case TANH: fn(std::integral_constant<int64_t, TANH>{}); break;
    case GATED: fn(std::integral_constant<int64_t, GATED>{}); break;
    case MODRELU: fn(std::integral_constant<int64_t, MODRELU>{}); break;
    default: fn(std::integral_constant<int64_t, CORNN>{}); break;
  }
}
}  // namespace cells

// S members (list entries), one task per (member, block of rows) as for_each_task splits them.
// The per-member scalars come packed (member_ints (S, 3), member_reals (S, 8); columns: forms.h).
void cells_forward(at::TensorList states, at::TensorList acts, at::TensorList drifts, at::TensorList u,
                   at::TensorList w, at::TensorList p, at::TensorList bias, at::TensorList in_wt, at::TensorList in_b,
                   at::TensorList dt, at::TensorList lengths, int64_t form, const at::Tensor& member_ints,
                   const at::Tensor& member_reals) {
  const int64_t S = static_cast<int64_t>(states.size()), B = u[0].size(0);
  const int64_t N = form == cells::CORNN ? states[0].size(2) / 2 : states[0].size(2);  // units (acts may be empty)
  const auto members = cells::read_members(dt, lengths, member_ints, member_reals, B, N);
  std::vector<cells::ForwardMember> ops(S);
  for (int64_t s = 0; s < S; ++s) {
    cells::ForwardMember& a = ops[s];
    a.states = states[s], a.acts = acts[s], a.drifts = drifts[s], a.u = u[s], a.w = w[s], a.p = p[s];
    a.bias = bias[s].numel() > 0 ? bias[s].data_ptr<float>() : nullptr;
    if (in_wt[s].numel() > 0) {
      a.in_wt = in_wt[s].data_ptr<float>(), a.in_b = in_b[s].data_ptr<float>(), a.uw = in_wt[s].size(1);
    }
    a.coef = members[s].coef, a.consts = members[s].consts;
  }
  for_each_task(S, B, [&](int64_t s, int64_t b0, int64_t b1) {
    const cells::ForwardMember& a = ops[s];
    const bool has_n = a.coef.has_n(), keep_f = a.drifts.numel() > 0;
    auto run = [&](auto form_c, auto n_c, auto f_c) {
      cells::forward_rows<decltype(form_c)::value, decltype(n_c)::value, decltype(f_c)::value>(a, b0, b1);
    };
    auto by_flags = [&](auto form_c) {
      using T = std::true_type;
      using Fa = std::false_type;
      if (has_n) { if (keep_f) run(form_c, T{}, T{}); else run(form_c, T{}, Fa{}); }
      else { if (keep_f) run(form_c, Fa{}, T{}); else run(form_c, Fa{}, Fa{}); }
    };
    cells::with_form(form, by_flags);
  });
}

void cells_backward(at::TensorList g_all, at::TensorList dp_all, at::TensorList g_out, at::TensorList states,
                    at::TensorList acts, at::TensorList drifts, at::TensorList wt, at::TensorList bias,
                    at::TensorList d_dt, at::TensorList d_bias, at::TensorList x_in, at::TensorList d_inw,
                    at::TensorList d_inb, at::TensorList dt, at::TensorList lengths, int64_t form,
                    const at::Tensor& member_ints, const at::Tensor& member_reals) {
  const int64_t S = static_cast<int64_t>(g_all.size()), B = acts[0].size(1), N = acts[0].size(2);
  const auto members = cells::read_members(dt, lengths, member_ints, member_reals, B, N);
  std::vector<cells::BackwardMember> ops(S);
  for (int64_t s = 0; s < S; ++s) {
    cells::BackwardMember& a = ops[s];
    a.g_all = g_all[s], a.dp_all = dp_all[s], a.states = states[s], a.acts = acts[s], a.drifts = drifts[s];
    a.wt = wt[s], a.d_dt = d_dt[s], a.d_bias = d_bias[s];
    a.bias = bias[s].numel() > 0 ? bias[s].data_ptr<float>() : nullptr;
    if (g_out[s].numel() > 0) {
      TORCH_CHECK(g_out[s].is_contiguous() && g_out[s].scalar_type() == at::kFloat && g_out[s].dim() == 3 &&
                      g_out[s].size(0) == acts[s].size(0) && g_out[s].size(1) == B &&
                      g_out[s].size(2) == states[s].size(2),
                  "cells: g_out must be contiguous float32 (M, B, H)");
      a.g_out = g_out[s].data_ptr<float>();
    }
    if (x_in[s].numel() > 0) {
      a.x_in = x_in[s].data_ptr<float>(), a.D = x_in[s].size(2), a.uw = d_inb[s].size(1);
      a.d_inw = d_inw[s].data_ptr<float>(), a.d_inb = d_inb[s].data_ptr<float>();
    }
    a.coef = members[s].coef, a.consts = members[s].consts;
  }
  for_each_task(S, B, [&](int64_t s, int64_t b0, int64_t b1) {
    const cells::BackwardMember& a = ops[s];
    const bool want_dt = a.d_dt.numel() > 0;
    auto run = [&](auto form_c, auto dt_c) {
      cells::backward_rows<decltype(form_c)::value, decltype(dt_c)::value>(a, b0, b1);
    };
    auto by_flags = [&](auto form_c) {
      if (want_dt) run(form_c, std::true_type{}); else run(form_c, std::false_type{});
    };
    cells::with_form(form, by_flags);
  });
}

TORCH_LIBRARY(noisyrnn_cpu, lib) {
  lib.def("philox_fill(Tensor(a!) out, int key, int offset, int stream, int kind, float scale, float shift) -> ()");
  lib.def("cells_forward(Tensor(a!)[] states, Tensor(b!)[] acts, Tensor(c!)[] drifts, Tensor[] u, Tensor[] w, "
          "Tensor(d!)[] p, Tensor[] bias, Tensor[] in_wt, Tensor[] in_b, Tensor[] dt, Tensor[] lengths, int form, "
          "Tensor member_ints, Tensor member_reals) -> ()");
  lib.def("cells_backward(Tensor(a!)[] g_all, Tensor(b!)[] dp_all, Tensor[] g_out, Tensor[] states, Tensor[] acts, "
          "Tensor[] drifts, Tensor[] wt, Tensor[] bias, Tensor(c!)[] d_dt, Tensor(d!)[] d_bias, Tensor[] x_in, "
          "Tensor(e!)[] d_inw, Tensor(f!)[] d_inb, Tensor[] dt, Tensor[] lengths, int form, Tensor member_ints, "
          "Tensor member_reals) -> ()");
  lib.def("gemm_tn(Tensor[] a, Tensor[] b, Tensor(a!)[] out) -> ()");
  lib.def("gemm_nn(Tensor a, Tensor b, Tensor(a!) out, bool accumulate, int repeat) -> ()");
  lib.def("gemm_kernel() -> str", &gemm_kernel);
}
TORCH_LIBRARY_IMPL(noisyrnn_cpu, CPU, lib) {
  lib.impl("philox_fill", &philox_fill);
  lib.impl("cells_forward", &cells_forward);
  lib.impl("cells_backward", &cells_backward);
  lib.impl("gemm_tn", &gemm_tn);
  lib.impl("gemm_nn", &gemm_nn);
}
