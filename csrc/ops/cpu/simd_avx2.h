// AVX2 + FMA: 8 floats per vector, 16 registers.
#pragma once

#include <immintrin.h>

namespace srgan_fast::cpu::avx2 {

struct Simd {
  static constexpr int W = 8;
  static constexpr int kGemmRows = 4, kGemmVecs = 2;  // 8 accumulators + 2 weights + 1 broadcast of 16 ymm
  static constexpr bool kHasBf16 = false;  // bf16 dot products (store_bf16, load_pairs, dot_bf16)
  static constexpr int kHeadPixels = 3, kTailPixels = 4;
  using vf = __m256;

  static vf load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, vf a) { _mm256_storeu_ps(p, a); }
  static vf set1(float x) { return _mm256_set1_ps(x); }
  static vf zero() { return _mm256_setzero_ps(); }
  static vf add(vf a, vf b) { return _mm256_add_ps(a, b); }
  static vf sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
  static vf mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
  static vf fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
  static vf prelu(vf x, vf slope) {
    return _mm256_blendv_ps(x, _mm256_mul_ps(x, slope), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
  }
  static float hsum(vf a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace srgan_fast::cpu::avx2
