// Philox4x32-10 (Salmon et al., SC'11): the counter-based generator behind noisyrnn.engine.philox
// and the noise the cell engine draws inside its step loop.
#pragma once
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <cmath>
#include <cstdint>

// ---- Philox4x32-10 (Salmon et al., SC'11), the counter-based generator of noisyrnn.philox ----
namespace philox {
constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
constexpr int LANES = 16;  // counters per block: the rounds vectorise across them

#if defined(__AVX512F__)
// high 32 bits of the 16 products a_j * b_j (unsigned)
inline __m512i mulhi_epu32(__m512i a, __m512i b) {
  const __m512i even = _mm512_srli_epi64(_mm512_mul_epu32(a, b), 32);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(b, 32));
  return _mm512_mask_blend_epi32(0xAAAA, even, odd);
}

// x[w][j] = word w of Philox(counter = (first + j, stream), key): the 16 counters in the lanes of
// four registers (the scalar loop below computes the same words; GCC would use the slow 64-bit
// vpmullq for its 32 x 32 -> 64 products)
inline void block(uint64_t first, uint64_t stream, uint64_t key, uint32_t (&x)[4][LANES]) {
  static_assert(LANES == 16, "one 512-bit register of 32-bit counters");
  const __m512i base = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(first)));
  __m512i x0 = _mm512_add_epi32(base, _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  __m512i x1 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(first >> 32)));
  x1 = _mm512_mask_add_epi32(x1, _mm512_cmplt_epu32_mask(x0, base), x1, _mm512_set1_epi32(1));  // carry
  __m512i x2 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream)));
  __m512i x3 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream >> 32)));
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(M0)), m1 = _mm512_set1_epi32(static_cast<int>(M1));
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    const __m512i lo0 = _mm512_mullo_epi32(x0, m0), hi0 = mulhi_epu32(x0, m0);
    const __m512i lo1 = _mm512_mullo_epi32(x2, m1), hi1 = mulhi_epu32(x2, m1);
    x0 = _mm512_xor_si512(_mm512_xor_si512(hi1, x1), _mm512_set1_epi32(static_cast<int>(k0)));
    x2 = _mm512_xor_si512(_mm512_xor_si512(hi0, x3), _mm512_set1_epi32(static_cast<int>(k1)));
    x1 = lo1;
    x3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  _mm512_storeu_si512(x[0], x0);
  _mm512_storeu_si512(x[1], x1);
  _mm512_storeu_si512(x[2], x2);
  _mm512_storeu_si512(x[3], x3);
}
#else
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
#endif

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
