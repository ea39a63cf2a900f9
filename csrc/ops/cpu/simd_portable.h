// Portable vectors of 4 floats: with GCC/Clang a generic vector type that the compiler lowers to the 128-bit
// SIMD every target has (SSE2 on baseline x86-64, NEON on ARM); elsewhere plain loops. Runs anywhere.
#pragma once

#include <cstring>

namespace srgan_fast::cpu::portable {

struct Simd {
  static constexpr int W = 4;
  static constexpr int kGemmRows = 3, kGemmVecs = 4;  // 12 accumulators + 4 weights + 1 broadcast of 16 xmm
  static constexpr bool kHasBf16 = false;  // bf16 dot products (store_bf16, load_pairs, dot_bf16)
  static constexpr int kHeadPixels = 3, kTailPixels = 4;
#if defined(__GNUC__) || defined(__clang__)
  typedef float vf __attribute__((vector_size(W * sizeof(float))));

  static vf load(const float* p) { vf r; std::memcpy(&r, p, sizeof(r)); return r; }
  static void store(float* p, vf a) { std::memcpy(p, &a, sizeof(a)); }
  static vf set1(float x) { return vf{} + x; }
  static vf zero() { return vf{}; }
  static vf add(vf a, vf b) { return a + b; }
  static vf sub(vf a, vf b) { return a - b; }
  static vf mul(vf a, vf b) { return a * b; }
  static vf fma(vf a, vf b, vf c) { return a * b + c; }
  static vf prelu(vf x, vf slope) { return x >= 0.f ? x : x * slope; }
  static float hsum(vf a) { float s = 0.f; for (int i = 0; i < W; ++i) s += a[i]; return s; }
#else
  struct vf { float v[W]; };

  static vf load(const float* p) { vf r; for (int i = 0; i < W; ++i) r.v[i] = p[i]; return r; }
  static void store(float* p, const vf& a) { for (int i = 0; i < W; ++i) p[i] = a.v[i]; }
  static vf set1(float x) { vf r; for (int i = 0; i < W; ++i) r.v[i] = x; return r; }
  static vf zero() { return set1(0.f); }
  static vf add(const vf& a, const vf& b) { vf r; for (int i = 0; i < W; ++i) r.v[i] = a.v[i] + b.v[i]; return r; }
  static vf sub(const vf& a, const vf& b) { vf r; for (int i = 0; i < W; ++i) r.v[i] = a.v[i] - b.v[i]; return r; }
  static vf mul(const vf& a, const vf& b) { vf r; for (int i = 0; i < W; ++i) r.v[i] = a.v[i] * b.v[i]; return r; }
  static vf fma(const vf& a, const vf& b, const vf& c) {  // a * b + c
    vf r; for (int i = 0; i < W; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i]; return r;
  }
  static vf prelu(const vf& x, const vf& slope) {
    vf r; for (int i = 0; i < W; ++i) r.v[i] = x.v[i] >= 0.f ? x.v[i] : x.v[i] * slope.v[i]; return r;
  }
  static float hsum(const vf& a) { float s = 0.f; for (int i = 0; i < W; ++i) s += a.v[i]; return s; }
#endif
};

}  // namespace srgan_fast::cpu::portable
