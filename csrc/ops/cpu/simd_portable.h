// Portable "vector" of 8 floats in plain loops: compilers turn these into SSE/NEON, and it runs anywhere.
#pragma once

namespace srgan_fast::cpu::portable {

struct Simd {
  static constexpr int W = 8;
  static constexpr int kGemmRows = 4, kGemmVecs = 2;  // Winograd GEMM micro-kernel: rows x (vecs * W)
  static constexpr bool kHasBf16 = false;  // bf16 dot products (store_bf16, load_pairs, dot_bf16)
  static constexpr int kHeadPixels = 3, kTailPixels = 4;
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
};

}  // namespace srgan_fast::cpu::portable
