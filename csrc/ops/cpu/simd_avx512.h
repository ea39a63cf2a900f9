// AVX-512F (+ AVX512_BF16 and AVX512_VNNI dot products): 16 floats per vector, 32 registers.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace srgan_fast::cpu::avx512 {

struct Simd {
  static constexpr int W = 16;
  static constexpr int kGemmRows = 6, kGemmVecs = 4;  // 24 accumulators + 4 weights + broadcasts of 32 zmm
  static constexpr bool kHasBf16 = true;  // bf16 dot products (store_bf16, load_pairs, dot_bf16)
  static constexpr int kHeadPixels = 6, kTailPixels = 8;
  using vf = __m512;
  using vpairs = __m512i;  // 16 pairs of bf16 (two input channels per 32-bit lane)

  static vf load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, vf a) { _mm512_storeu_ps(p, a); }
  static vf set1(float x) { return _mm512_set1_ps(x); }
  static vf zero() { return _mm512_setzero_ps(); }
  static vf add(vf a, vf b) { return _mm512_add_ps(a, b); }
  static vf sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
  static vf mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
  static vf fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
  static vf prelu(vf x, vf slope) {
    return _mm512_mask_mul_ps(x, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), x, slope);
  }
  static float hsum(vf a) { return _mm512_reduce_add_ps(a); }

  // int8: 16 lanes of s32, each += the sum of four u8 x s8 products (VPDPBUSD, AVX512_VNNI), exact in s32.
  using vi = __m512i;
  static constexpr int kInt8WeightMax = 127;
  static constexpr bool kHasU16Codes = false;  // VPDPBUSD reads u8 codes only
  static constexpr int kInt8Pixels = 6, kInt8Vecs = 4;  // 24 accumulators + 4 weights + a broadcast of 32 zmm
  static vi zero_i() { return _mm512_setzero_si512(); }
  static vi load_i(const void* p) { return _mm512_loadu_si512(p); }
  static vi set1_four(const uint8_t* p) {
    int32_t four;
    std::memcpy(&four, p, 4);
    return _mm512_set1_epi32(four);
  }
  static vi dot_u8s8(vi acc, vi a, vi w) { return _mm512_dpbusd_epi32(acc, a, w); }
  static vf int_to_float(vi a) { return _mm512_cvtepi32_ps(a); }
  static vi sub_i(vi a, vi b) { return _mm512_sub_epi32(a, b); }
  // W codes: round half to even of v * inv_scale, plus the zero point, clamped to [0, 255]. The float clamp
  // keeps the conversion away from its overflow value.
  static void store_codes(uint8_t* p, vf v, vf inv_scale, vi zero_point) {
    const vf t = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv_scale), set1(-512.f)), set1(512.f));
    const vi q = _mm512_max_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(t), zero_point), _mm512_setzero_si512());
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtusepi32_epi8(q));
  }
  // The same codes of values already in code steps (inv_scale 1), two instructions fewer: no multiply, and no
  // lower clamp, since below it the conversion's overflow value plus the zero point still clamps to 0.
  static void store_unit_codes(uint8_t* p, vf v, vi zero_point) {
    const vi q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_min_ps(v, set1(512.f))), zero_point);
    const vi clamped = _mm512_max_epi32(q, _mm512_setzero_si512());
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtusepi32_epi8(clamped));
  }
  static vi set1_i(int x) { return _mm512_set1_epi32(x); }

  // bf16: round 16 floats to nearest even and store them as 16 bf16.
  static void store_bf16(uint16_t* p, vf a) {
    const __m256bh r = _mm512_cvtneps_pbh(a);
    std::memcpy(p, &r, sizeof(r));
  }
  static vpairs load_pairs(const uint16_t* p) { return _mm512_loadu_si512(p); }
  static vpairs set1_pair(const uint16_t* p) {
    int32_t bits;
    std::memcpy(&bits, p, 4);
    return _mm512_set1_epi32(bits);
  }
  // acc[i] += a[2i] * b[2i] + a[2i+1] * b[2i+1], products of bf16 accumulated in fp32.
  static vf dot_bf16(vf acc, vpairs a, vpairs b) {
    __m512bh abh, bbh;
    std::memcpy(&abh, &a, 64);
    std::memcpy(&bbh, &b, 64);
    return _mm512_dpbf16_ps(acc, abh, bbh);
  }
};

}  // namespace srgan_fast::cpu::avx512
