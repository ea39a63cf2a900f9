// The 9x9 tail (C -> 3) as nine 3x3 convolutions, each by Winograd F(3x3, 3x3), templated on SIMD traits S.
// Split the kernel into 3x3 sub-kernels at offsets (3a, 3b). With 3x3 output tiles at stride 3, sub-kernel
// (a, b) of tile (ty, tx) reads exactly the 5x5 input patch of patch (ty + a, tx + b) on a stride-3 grid, so
// each patch is transformed once (V = B^T d B) and serves the nine sub-kernels of nine tiles:
//   M[tile] = sum over (a, b) and input channels of U_ab * V[tile + (a, b)],   Y = A^T M A.
// That is 25 * 9 products per 9 outputs and channel instead of 81 per output: 3.2x fewer than direct.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops/cpu/isa_template.h"
#include "ops/cpu/kernels.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// F(3x3, 3x3) with interpolation points 0, 1, -1, 2 and infinity: B^T (5 -> 5) on vectors, A^T (5 -> 3)
// on scalars (the outputs are 3 channels, reduced before the output transform).
template <class S>
inline void tail_bt(const typename S::vf d[5], typename S::vf t[5]) {
  using vf = typename S::vf;
  const vf two = S::set1(2.f), three = S::set1(3.f);
  const vf d3_m_d1 = S::sub(d[3], d[1]);
  t[0] = S::sub(S::fma(two, S::sub(d[0], d[2]), d[3]), d[1]);                    // 2d0 - d1 - 2d2 + d3
  t[1] = S::sub(S::sub(d[3], d[2]), S::mul(two, d[1]));                          // -2d1 - d2 + d3
  t[2] = S::sub(S::fma(two, d[1], d[3]), S::mul(three, d[2]));                   // 2d1 - 3d2 + d3
  t[3] = d3_m_d1;                                                                // -d1 + d3
  t[4] = S::sub(S::fma(two, S::sub(d[1], d[3]), d[4]), d[2]);                    // 2d1 - d2 - 2d3 + d4
}

template <class S>
inline void tail_at(const float m[5], float o[3]) {
  o[0] = m[0] + m[1] + m[2] + m[3];
  o[1] = m[1] - m[2] + 2.f * m[3];
  o[2] = m[1] + m[2] + 4.f * m[3] + m[4];
}

// V[j][pos][c] for the patches (s, t0 + j), j < cols, of one patch row; a patch's origin is (3s - 4, 3t - 4).
template <class S>
void tail_input_transform(const FeatureMap& in, int image, int s, int t0, int cols, float* v) {
  using vf = typename S::vf;
  const int C = in.c;
  for (int j = 0; j < cols; ++j) {
    const float* patch = in.at(image, 3 * s - 4, 3 * (t0 + j) - 4);
    float* dst = v + int64_t(j) * 25 * C;
    for (int c = 0; c < C; c += S::W) {
      vf d[5][5], t[5][5];
      for (int r = 0; r < 5; ++r)
        for (int k = 0; k < 5; ++k) d[r][k] = S::load(patch + r * in.row_stride + int64_t(k) * C + c);
      for (int k = 0; k < 5; ++k) {
        vf col[5], out[5];
        for (int r = 0; r < 5; ++r) col[r] = d[r][k];
        tail_bt<S>(col, out);
        for (int r = 0; r < 5; ++r) t[r][k] = out[r];
      }
      for (int r = 0; r < 5; ++r) {
        vf out[5];
        tail_bt<S>(t[r], out);
        for (int k = 0; k < 5; ++k) S::store(dst + (r * 5 + k) * C + c, out[k]);
      }
    }
  }
}

// m[tile][pos][co] for P consecutive tiles of a block (first: index within it), from the transformed patch
// rows ty, ty + 1, ty + 2 of the block (v_rows[a], each [cols][25][C]).
template <class S, int P>
inline void tail_multiply(const float* const v_rows[3], const float* u, int C, int first, float* m) {
  using vf = typename S::vf;
  for (int pos = 0; pos < 25; ++pos) {
    vf acc[P][3];
    for (int i = 0; i < P; ++i) acc[i][0] = acc[i][1] = acc[i][2] = S::zero();
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) {
        const float* ub = u + ((a * 3 + b) * 25 + pos) * 3 * C;
        const float* vb = v_rows[a] + (int64_t(first + b) * 25 + pos) * C;
        for (int c = 0; c < C; c += S::W) {
          const vf u0 = S::load(ub + c), u1 = S::load(ub + C + c), u2 = S::load(ub + 2 * C + c);
          for (int i = 0; i < P; ++i) {
            const vf x = S::load(vb + int64_t(i) * 25 * C + c);
            acc[i][0] = S::fma(x, u0, acc[i][0]);
            acc[i][1] = S::fma(x, u1, acc[i][1]);
            acc[i][2] = S::fma(x, u2, acc[i][2]);
          }
        }
      }
    for (int i = 0; i < P; ++i)
      for (int co = 0; co < 3; ++co) m[((first + i) * 25 + pos) * 3 + co] = S::hsum(acc[i][co]);
  }
}

// Y = A^T M A + bias for each channel of the tiles of one block row, stored inside the image.
template <class S, class T>
inline void tail_output_transform(const TailParams& p, const float* m, int image, int ty, int t0, int count,
                                  float scale) {
  const int H = p.in.h, W = p.in.w;
  T* out = static_cast<T*>(p.out);
  for (int j = 0; j < count; ++j) {
    const int y0 = 3 * ty, x0 = 3 * (t0 + j);
    for (int co = 0; co < 3; ++co) {
      float t[3][5], y[3][3];
      for (int k = 0; k < 5; ++k) {  // columns: A^T M
        float col[5], o[3];
        for (int r = 0; r < 5; ++r) col[r] = m[(j * 25 + r * 5 + k) * 3 + co];
        tail_at<S>(col, o);
        for (int r = 0; r < 3; ++r) t[r][k] = o[r];
      }
      for (int r = 0; r < 3; ++r) tail_at<S>(t[r], y[r]);
      for (int r = 0; r < 3 && y0 + r < H; ++r)
        for (int k = 0; k < 3 && x0 + k < W; ++k)
          out[((int64_t(image) * H + y0 + r) * W + x0 + k) * 3 + co] =
              image_value<S, T>(y[r][k] + p.bias[co], scale);
    }
  }
}

// Work items: (image, band of kTailRowBand tile rows, block of kTailTileBlock tile columns). Down a band the
// three transformed patch rows live in a ring, so each patch row is transformed once per band.
template <class S, class T>
void tail_winograd_typed(const TailParams& p, const ExecContext& ctx) {
  constexpr int TB = kTailTileBlock, RB = kTailRowBand;
  const int C = p.in.c;
  const int tiles_h = (p.in.h + 2) / 3, tiles_w = (p.in.w + 2) / 3;
  const int col_blocks = (tiles_w + TB - 1) / TB, bands = (tiles_h + RB - 1) / RB;
  const int64_t items = int64_t(p.in.n) * bands * col_blocks;
  const float scale = full_scale(p.dtype);
  const int64_t slot = int64_t(TB + 2) * 25 * C;  // one transformed patch row of a block
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic)
  for (int64_t item = 0; item < items; ++item) {
    const int image = int(item / (int64_t(bands) * col_blocks));
    const int rem = int(item % (int64_t(bands) * col_blocks));
    const int ty0 = rem / col_blocks * RB, ty1 = std::min(tiles_h, ty0 + RB), t0 = rem % col_blocks * TB;
    const int count = std::min(TB, tiles_w - t0), cols = count + 2;
    float* ring = ctx.scratch + thread_index() * ctx.scratch_floats_per_thread;  // 3 slots
    float* m = ring + 3 * slot;                                                  // [TB][25][3]
    for (int s = ty0; s < ty0 + 2; ++s) tail_input_transform<S>(p.in, image, s, t0, cols, ring + (s % 3) * slot);
    for (int ty = ty0; ty < ty1; ++ty) {
      tail_input_transform<S>(p.in, image, ty + 2, t0, cols, ring + ((ty + 2) % 3) * slot);
      const float* const rows[3] = {ring + (ty % 3) * slot, ring + ((ty + 1) % 3) * slot,
                                    ring + ((ty + 2) % 3) * slot};
      int first = 0;
      for (; first + S::kTailPixels <= count; first += S::kTailPixels)
        tail_multiply<S, S::kTailPixels>(rows, p.weight_winograd, C, first, m);
      for (; first < count; ++first) tail_multiply<S, 1>(rows, p.weight_winograd, C, first, m);
      tail_output_transform<S, T>(p, m, image, ty, t0, count, scale);
    }
  }
}

template <class S>
void tail_winograd(const TailParams& p, const ExecContext& ctx) {
  switch (p.dtype) {
    case DType::u8: tail_winograd_typed<S, uint8_t>(p, ctx); break;
    case DType::u16: tail_winograd_typed<S, uint16_t>(p, ctx); break;
    case DType::f32: tail_winograd_typed<S, float>(p, ctx); break;
  }
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
