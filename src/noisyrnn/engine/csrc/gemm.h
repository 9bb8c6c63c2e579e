// The cell engine's float32 matrix products: an AVX-512 GEMM (packed right factor, 12x32 register
// tile; one FMA chain per output, so results do not depend on the row split), ATen elsewhere.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace gemm {
#if defined(__AVX512F__)
constexpr int64_t NR = 32;   // columns per panel: two zmm registers
constexpr int64_t MR = 12;   // rows per register tile: 24 accumulators of the 32 registers
constexpr int64_t KC = 256;  // depth of one packed block of a long product (A and B blocks in L2)

inline int64_t panels(int64_t N) { return (N + NR - 1) / NR; }
inline int64_t packed_size(int64_t K, int64_t N) { return panels(N) * NR * K; }

// B (K x N, row stride ldb) -> panels of NR columns, each K x NR contiguous, the tail zero-padded
inline void pack_b(int64_t K, int64_t N, const float* B, int64_t ldb, float* out) {
  for (int64_t jp = 0; jp < panels(N); ++jp) {
    const int64_t j0 = jp * NR, w = std::min(NR, N - j0);
    float* o = out + jp * NR * K;
    for (int64_t k = 0; k < K; ++k) {
      const float* b = B + k * ldb + j0;
      int64_t j = 0;
      for (; j < w; ++j) o[k * NR + j] = b[j];
      for (; j < NR; ++j) o[k * NR + j] = 0.0f;
    }
  }
}

// C[r, 0:32] (+)= sum_k A[r rsa + k csa] Bp[k, 0:32] for r < R; columns masked by m0, m1
template <int R>
inline void tile(int64_t K, const float* __restrict A, int64_t rsa, int64_t csa, const float* __restrict Bp,
                 float* __restrict C, int64_t ldc, bool acc, __mmask16 m0, __mmask16 m1) {
  __m512 c0[R], c1[R];
  for (int r = 0; r < R; ++r) {
    c0[r] = _mm512_setzero_ps();
    c1[r] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < K; ++k) {
    const __m512 b0 = _mm512_loadu_ps(Bp + k * NR), b1 = _mm512_loadu_ps(Bp + k * NR + 16);
    const float* a = A + k * csa;
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * rsa]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* c = C + r * ldc;
    if (acc) {
      c0[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), c0[r]);
      c1[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), c1[r]);
    }
    _mm512_mask_storeu_ps(c, m0, c0[r]);
    _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
  }
}

// tile<rows> for a runtime rows <= R
template <int R>
inline void tile_rows(int64_t rows, int64_t K, const float* A, int64_t rsa, int64_t csa, const float* Bp, float* C,
                      int64_t ldc, bool acc, __mmask16 m0, __mmask16 m1) {
  if constexpr (R > 0) {
    if (rows == R) tile<R>(K, A, rsa, csa, Bp, C, ldc, acc, m0, m1);
    else tile_rows<R - 1>(rows, K, A, rsa, csa, Bp, C, ldc, acc, m0, m1);
  }
}

// C (M x N, row stride ldc) = [C +] A Bp with A(i, k) = A[i rsa + k csa] and Bp = pack_b(B (K x N))
inline void multiply_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t rsa, int64_t csa,
                            const float* Bp, float* C, int64_t ldc, bool acc) {
  for (int64_t jp = 0; jp < panels(N); ++jp) {
    const int64_t j0 = jp * NR, w = std::min(NR, N - j0);
    const __mmask16 m0 = w >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << w) - 1u);
    const __mmask16 m1 = w >= 32 ? 0xFFFF : (w <= 16 ? 0 : static_cast<__mmask16>((1u << (w - 16)) - 1u));
    const float* bp = Bp + jp * NR * K;
    for (int64_t i = 0; i < M; i += MR)
      tile_rows<MR>(std::min(MR, M - i), K, A + i * rsa, rsa, csa, bp, C + i * ldc + j0, ldc, acc, m0, m1);
  }
}

// C (M x N) = [C +] A B for any depth K: B packed KC rows at a time into scratch (packed_size(KC, N))
inline void multiply(int64_t M, int64_t N, int64_t K, const float* A, int64_t rsa, int64_t csa, const float* B,
                     int64_t ldb, float* C, int64_t ldc, bool acc, float* scratch) {
  if (K == 0 && !acc) {
    for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    return;
  }
  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    const int64_t kc = std::min(KC, K - k0);
    pack_b(kc, N, B + k0 * ldb, ldb, scratch);
    multiply_packed(M, N, kc, A + k0 * csa, rsa, csa, scratch, C, ldc, acc || k0 > 0);
  }
}
#endif

// The right factor B (K x N, float32) of many products a B, packed once
class RightFactor {
 public:
  explicit RightFactor(const at::Tensor& b) : b_(b.contiguous()), K_(b.size(0)), N_(b.size(1)) {
#if defined(__AVX512F__)
    packed_.resize(packed_size(K_, N_));
    pack_b(K_, N_, b_.data_ptr<float>(), N_, packed_.data());
#endif
  }
  // c (M x N, row stride ldc) = a (M x K, row stride lda) B, or c += a B
  void apply(int64_t M, const float* a, int64_t lda, float* c, int64_t ldc, bool accumulate) const {
    if (M == 0) return;
#if defined(__AVX512F__)
    multiply_packed(M, N_, K_, a, lda, 1, packed_.data(), c, ldc, accumulate);
#else
    const auto opts = b_.options();
    at::Tensor av = at::from_blob(const_cast<float*>(a), {M, K_}, {lda, 1}, opts);
    at::Tensor cv = at::from_blob(c, {M, N_}, {ldc, 1}, opts);
    if (accumulate) at::addmm_out(cv, cv, av, b_); else at::mm_out(cv, av, b_);
#endif
  }

 private:
  at::Tensor b_;
  int64_t K_, N_;
  std::vector<float> packed_;
};

// c (M x N, row stride ldc) = a^T b for a (K x M, row stride lda), b (K x N, row stride ldb)
inline void transposed_product(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b,
                               int64_t ldb, float* c, int64_t ldc) {
  if (M == 0) return;
#if defined(__AVX512F__)
  std::vector<float> scratch(packed_size(KC, N));
  multiply(M, N, K, a, 1, lda, b, ldb, c, ldc, false, scratch.data());
#else
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  at::Tensor av = at::from_blob(const_cast<float*>(a), {K, M}, {lda, 1}, opts);
  at::Tensor bv = at::from_blob(const_cast<float*>(b), {K, N}, {ldb, 1}, opts);
  at::Tensor cv = at::from_blob(c, {M, N}, {ldc, 1}, opts);
  at::mm_out(cv, av.t(), bv);
#endif
}
}  // namespace gemm

// which kernel the products use here: "avx512" (this file's) or "aten" (the BLAS torch links)
std::string gemm_kernel() {
#if defined(__AVX512F__)
  return "avx512";
#else
  return "aten";
#endif
}
