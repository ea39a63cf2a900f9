// The head (k x k, k <= 9, 3 -> C, + bias + PReLU, reading the image dtype) and the bf16 tail (C -> 3, + bias,
// writing the image dtype), templated on the SIMD traits S of one instruction set, as direct convolutions: the
// head has only 3 input channels (0.7% of the network's arithmetic), and in bf16 Winograd's transforms would
// amplify the rounding (see winograd_kernels.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/cpu/isa_template.h"
#include "ops/cpu/kernels.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// One image row converted to float in [0, 1], cin channels, with 4 zero pixels on each side.
template <class S>
inline void head_load_row(const HeadParams& p, int image, int y, float* dst) {
  const int w = p.w, cin = p.cin;
  for (int i = 0; i < (w + 8) * cin; ++i) dst[i] = 0.f;
  if (y < 0 || y >= p.h) return;
  const size_t offset = (size_t(image) * p.h + y) * w * cin;
  float* row = dst + 4 * cin;
  switch (p.dtype) {  // division, not a reciprocal multiply: the same rounding as the torch reference
    case DType::u8: {
      const uint8_t* src = static_cast<const uint8_t*>(p.image) + offset;
      for (int i = 0; i < w * cin; ++i) row[i] = float(src[i]) / 255.f;
      break;
    }
    case DType::u16: {
      const uint16_t* src = static_cast<const uint16_t*>(p.image) + offset;
      for (int i = 0; i < w * cin; ++i) row[i] = float(src[i]) / 65535.f;
      break;
    }
    case DType::f32: {
      const float* src = static_cast<const float*>(p.image) + offset;
      for (int i = 0; i < w * cin; ++i) row[i] = src[i];
      break;
    }
  }
}

// P pixels x NV channel vectors of one output row, from a strip of 9 converted rows (a smaller kernel reads the
// middle ones: its taps are those of the 9x9 padded with zero weights but for those zeros' no-op FMAs, so the
// sums are the same bits).
template <class S, int P, int NV>
inline void head_pixels(const HeadParams& p, const float* strip, int strip_stride, int image, int y, int x0,
                        int c0) {
  using vf = typename S::vf;
  const int C = p.cout, cin = p.cin;
  vf acc[P][NV];
  for (int j = 0; j < NV; ++j) {
    const vf b = S::load(p.bias + c0 + j * S::W);
    for (int i = 0; i < P; ++i) acc[i][j] = b;
  }
  const int k = p.k, margin = 4 - k / 2;  // the strip holds 9 rows and 4 pixels each side: a 9x9's reach
  for (int ky = 0; ky < k; ++ky) {
    const float* src = strip + (ky + margin) * strip_stride + (x0 + margin) * cin;
    for (int kx = 0; kx < k; ++kx)
      for (int ci = 0; ci < cin; ++ci) {
        const float* wp = p.weight + ((ky * k + kx) * cin + ci) * C + c0;
        vf wv[NV];
        for (int j = 0; j < NV; ++j) wv[j] = S::load(wp + j * S::W);
        for (int i = 0; i < P; ++i) {
          const vf a = S::set1(src[(i + kx) * cin + ci]);
          for (int j = 0; j < NV; ++j) acc[i][j] = S::fma(a, wv[j], acc[i][j]);
        }
      }
  }
  for (int j = 0; j < NV; ++j) {
    const vf slope = S::load(p.alpha + c0 + j * S::W);
    for (int i = 0; i < P; ++i) {
      const vf v = S::prelu(acc[i][j], slope);
      S::store(p.out.at(image, y, x0 + i) + c0 + j * S::W, v);
      if (p.out_copy.data) S::store(p.out_copy.at(image, y, x0 + i) + c0 + j * S::W, v);
    }
  }
}

template <class S, int NV>
void head_rows(const HeadParams& p, const ExecContext& ctx) {
  const int strip_stride = (p.w + 8) * p.cin;
  const int64_t rows = int64_t(p.n) * p.h;
  constexpr int P = S::kHeadPixels;
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic)
  for (int64_t r = 0; r < rows; ++r) {
    const int image = int(r / p.h), y = int(r % p.h);
    float* strip = ctx.scratch + thread_index() * ctx.scratch_floats_per_thread;
    // The conversion is fused here: each output row converts the input rows it reads.
    for (int ky = 4 - p.k / 2; ky <= 4 + p.k / 2; ++ky)
      head_load_row<S>(p, image, y + ky - 4, strip + ky * strip_stride);
    for (int c0 = 0; c0 < p.cout; c0 += NV * S::W) {
      int x = 0;
      for (; x + P <= p.w; x += P) head_pixels<S, P, NV>(p, strip, strip_stride, image, y, x, c0);
      for (; x < p.w; ++x) head_pixels<S, 1, NV>(p, strip, strip_stride, image, y, x, c0);
    }
  }
}

template <class S>
void head(const HeadParams& p, const ExecContext& ctx) {
  const int vecs = p.cout / S::W;
  if (vecs % 4 == 0) head_rows<S, 4>(p, ctx);
  else if (vecs % 2 == 0) head_rows<S, 2>(p, ctx);
  else head_rows<S, 1>(p, ctx);
}

// The bf16 tail, direct: P pixels of one output row, 3 outputs each, accumulated over channels with bf16 dot
// products (32 channels per instruction) and reduced at the end. (fp32 uses tail_winograd_kernels.h.)
template <class S, int P, class T>
inline void tail_pixels_bf16(const TailParams& p, int image, int y, int x0, T* out) {
  using vf = typename S::vf;
  const int C = p.in_bf16.c;  // a multiple of 32
  vf acc[P][3];
  for (int i = 0; i < P; ++i) acc[i][0] = acc[i][1] = acc[i][2] = S::zero();
  for (int ky = 0; ky < 9; ++ky) {
    const uint16_t* src_row = p.in_bf16.at(image, y + ky - 4, x0 - 4);
    for (int kx = 0; kx < 9; ++kx) {
      const uint16_t* wp = p.weight_bf16 + (ky * 9 + kx) * 3 * C;
      const uint16_t* src = src_row + kx * C;
      for (int c = 0; c < C; c += 2 * S::W) {
        const auto w0 = S::load_pairs(wp + c), w1 = S::load_pairs(wp + C + c), w2 = S::load_pairs(wp + 2 * C + c);
        for (int i = 0; i < P; ++i) {
          const auto x = S::load_pairs(src + i * C + c);
          acc[i][0] = S::dot_bf16(acc[i][0], x, w0);
          acc[i][1] = S::dot_bf16(acc[i][1], x, w1);
          acc[i][2] = S::dot_bf16(acc[i][2], x, w2);
        }
      }
    }
  }
  const float scale = full_scale(p.dtype);
  for (int i = 0; i < P; ++i)
    for (int k = 0; k < 3; ++k) out[(x0 + i) * 3 + k] = image_value<S, T>(S::hsum(acc[i][k]) + p.bias[k], scale);
}

template <class S, class T>
void tail_bf16_typed(const TailParams& p, const ExecContext& ctx) {
  const int64_t rows = int64_t(p.in.n) * p.in.h;
  constexpr int P = S::kTailPixels;
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic)
  for (int64_t r = 0; r < rows; ++r) {
    const int image = int(r / p.in.h), y = int(r % p.in.h);
    T* out = static_cast<T*>(p.out) + r * p.in.w * 3;
    int x = 0;
    for (; x + P <= p.in.w; x += P) tail_pixels_bf16<S, P, T>(p, image, y, x, out);
    for (; x < p.in.w; ++x) tail_pixels_bf16<S, 1, T>(p, image, y, x, out);
  }
}

// Reads p.in_bf16 and p.weight_bf16 (p.in gives the geometry).
template <class S>
void tail_bf16(const TailParams& p, const ExecContext& ctx) {
  switch (p.dtype) {
    case DType::u8: tail_bf16_typed<S, uint8_t>(p, ctx); break;
    case DType::u16: tail_bf16_typed<S, uint16_t>(p, ctx); break;
    case DType::f32: tail_bf16_typed<S, float>(p, ctx); break;
  }
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
