// AVX2 + FMA: 8 floats per vector, 16 registers.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace srgan_fast::cpu::avx2 {

struct Simd {
  static constexpr int W = 8;
  static constexpr int kGemmRows = 6, kGemmVecs = 2;  // 12 accumulators + 2 weights + 1 broadcast of 16 ymm
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
  // int8 (int8_winograd_kernels.h): 8 lanes of s32 from pairs of s16 products (VPMADDWD), exact.
  using vi = __m256i;
  static constexpr int kInt8WeightMax = 127;
  static constexpr bool kHasU16Codes = true;  // centred_codes and store_codes of u16 code maps
  static constexpr int kInt8Rows = 6, kInt8Vecs = 2;  // 12 accumulators + 2 weights + a broadcast and a product
  static vi zero_i() { return _mm256_setzero_si256(); }
  static vi load_i(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static void store_i(void* p, vi a) { _mm256_storeu_si256(static_cast<__m256i*>(p), a); }
  static vi add_i(vi a, vi b) { return _mm256_add_epi32(a, b); }
  static vi sub_i(vi a, vi b) { return _mm256_sub_epi32(a, b); }
  static vi shift_right_2(vi a) { return _mm256_srai_epi32(a, 2); }  // exact: the sums are multiples of 4
  static vf int_to_float(vi a) { return _mm256_cvtepi32_ps(a); }
  // W codes minus the zero point, as floats (exact: small integers).
  static vf centred_codes(const uint8_t* p, vi zero_point) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(bytes), zero_point));
  }
  static vf centred_codes(const uint16_t* p, vi zero_point) {
    const __m128i words = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu16_epi32(words), zero_point));
  }
  static void store_s16(int16_t* p, vf v) {  // v holds integers within s16
    const vi q = _mm256_cvtps_epi32(v);
    const __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
  }
  static vi set1_pair_s16(const int16_t* p) {
    int32_t pair;
    std::memcpy(&pair, p, 4);
    return _mm256_set1_epi32(pair);
  }
  static vi madd_s16(vi acc, vi a, vi b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
  // W codes: round half to even of v * inv_scale, plus the zero point, clamped to [0, 255]. The float clamp
  // keeps the conversion away from its overflow value.
  static void store_codes(uint8_t* p, vf v, vf inv_scale, vi zero_point) {
    const vf t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, inv_scale), set1(-512.f)), set1(512.f));
    const vi q = _mm256_add_epi32(_mm256_cvtps_epi32(t), zero_point);
    const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i q8 = _mm_packus_epi16(q16, q16);  // saturates to [0, 255]
    std::memcpy(p, &q8, 8);
  }
  // The same into u16 codes clamped to [0, code_max] (code_max < 32768).
  static void store_codes(uint16_t* p, vf v, vf inv_scale, vi zero_point, vi code_max) {
    const vf t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, inv_scale), set1(-65536.f)), set1(65536.f));
    const vi q = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(t), zero_point),
                                                   _mm256_setzero_si256()), code_max);
    const __m128i q16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), q16);
  }
  static vi set1_i(int x) { return _mm256_set1_epi32(x); }

  static float hsum(vf a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace srgan_fast::cpu::avx2
