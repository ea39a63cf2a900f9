// int8 3x3 convolution, templated on the SIMD traits S of one instruction set: u8 activation codes x s8
// weights, four input channels per 32-bit lane (S::dot_u8s8: VPDPBUSD on AVX512_VNNI, VPMADDUBSW + VPMADDWD
// on AVX2), summed exactly in s32; then one fused epilogue per output vector (requantize, bias, PReLU, skip
// add or pixel shuffle) storing float32, bf16 and/or the next conv's u8 codes. Direct convolution: Winograd
// would mix codes before the products and need them requantized, a second rounding per layer.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/cpu/kernels.h"

#ifndef SRGAN_FAST_ISA
#error "define SRGAN_FAST_ISA (the instruction set's namespace) before including the kernel templates"
#endif

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// Channels ch .. ch+W-1 of result pixel (y, x) into every destination of p.
template <class S>
inline void store_int8_result(const Conv3x3Int8Params& p, int image, int y, int x, int ch, typename S::vf v) {
  if (p.out.data) S::store(p.out.at(image, y, x) + ch, v);
  if constexpr (S::kHasBf16) {
    if (p.out_bf16.data) S::store_bf16(p.out_bf16.at(image, y, x) + ch, v);
  }
  if (p.out_u8.data)
    S::store_codes(p.out_u8.at(image, y, x) + ch, v, S::set1(p.out_quant.inv_scale),
                   S::set1_i(p.out_quant.zero_point));
}

// Output pixels (y, x0 .. x0+count-1), channels co0 .. co0+W*NV-1. Pixels past count are computed from the
// halo and dropped, so a row needs no remainder loop.
template <class S, int NV>
void conv3x3_int8_pixels(const Conv3x3Int8Params& p, int image, int y, int x0, int co0, int count) {
  using vf = typename S::vf;
  using vi = typename S::vi;
  constexpr int MR = S::kInt8Pixels;
  const PackedConv3x3Int8& wt = *p.weights;
  const int groups = wt.cin / 4;
  vi acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = S::zero_i();
  for (int tap = 0; tap < 9; ++tap) {
    const uint8_t* src = p.in.at(image, y + tap / 3 - 1, x0 + tap % 3 - 1);
    const int8_t* w = wt.w + (int64_t(tap) * groups * wt.cout + co0) * 4;
    for (int g = 0; g < groups; ++g) {
      vi wv[NV];
      for (int j = 0; j < NV; ++j) wv[j] = S::load_i(w + (int64_t(g) * wt.cout + j * S::W) * 4);
      for (int i = 0; i < MR; ++i) {
        const vi a = S::set1_four(src + int64_t(i) * p.in.c + 4 * g);
        for (int j = 0; j < NV; ++j) acc[i][j] = S::dot_u8s8(acc[i][j], a, wv[j]);
      }
    }
  }
  const int group = wt.cout / 4;  // shuffle: channels per sub-pixel
  for (int j = 0; j < NV; ++j) {
    const int co = co0 + S::W * j;
    const vi compensation = S::load_i(wt.compensation + co);
    const vf scale = S::load(wt.scale + co), bias = S::load(wt.bias + co);
    for (int i = 0; i < count; ++i) {
      const vf v = S::add(S::mul(S::int_to_float(S::sub_i(acc[i][j], compensation)), scale), bias);
      const int x = x0 + i;
      switch (p.epilogue) {
        case Epilogue::bias_prelu:
          store_int8_result<S>(p, image, y, x, co, S::prelu(v, S::load(wt.alpha + co)));
          break;
        case Epilogue::bias_add_skip:
          store_int8_result<S>(p, image, y, x, co, S::add(v, S::load(p.skip.at(image, y, x) + co)));
          break;
        case Epilogue::bias_shuffle_prelu: {
          const int sub = co / group, ch = co % group;
          store_int8_result<S>(p, image, 2 * y + sub / 2, 2 * x + sub % 2, ch, S::prelu(v, S::load(wt.alpha + ch)));
          break;
        }
      }
    }
  }
}

// A chunk narrower than S::kInt8Vecs vectors (the last of a cout that is not a multiple of the chunk).
template <class S, int NV>
void conv3x3_int8_chunk(const Conv3x3Int8Params& p, int image, int y, int co0, int vectors) {
  if constexpr (NV > 1) {
    if (vectors < NV) return conv3x3_int8_chunk<S, NV - 1>(p, image, y, co0, vectors);
  }
  for (int x0 = 0; x0 < p.in.w; x0 += S::kInt8Pixels)
    conv3x3_int8_pixels<S, NV>(p, image, y, x0, co0, std::min(S::kInt8Pixels, p.in.w - x0));
}

// One work item per output row; each row walks its chunks of output channels (their weights stay in cache)
// and, inside a chunk, the row's pixels in runs of kInt8Pixels.
template <class S>
void conv3x3_int8(const Conv3x3Int8Params& p, const ExecContext& ctx) {
  const int64_t rows = int64_t(p.in.n) * p.in.h;
  const int cout = p.weights->cout, chunk = S::kInt8Vecs * S::W;
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic)
  for (int64_t r = 0; r < rows; ++r) {
    const int image = int(r / p.in.h), y = int(r % p.in.h);
    for (int co0 = 0; co0 < cout; co0 += chunk)
      conv3x3_int8_chunk<S, S::kInt8Vecs>(p, image, y, co0, std::min(chunk, cout - co0) / S::W);
  }
}

template <class S>
void quantize_u8(const QuantizeParams& p, const ExecContext& ctx) {
  const int64_t rows = int64_t(p.in.n) * p.in.h;
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic)
  for (int64_t r = 0; r < rows; ++r) {
    const int image = int(r / p.in.h), y = int(r % p.in.h);
    const typename S::vf inv_scale = S::set1(p.quant.inv_scale);
    const typename S::vi zero_point = S::set1_i(p.quant.zero_point);
    for (int x = 0; x < p.in.w; ++x)
      for (int c = 0; c < p.in.c; c += S::W)
        S::store_codes(p.out.at(image, y, x) + c, S::load(p.in.at(image, y, x) + c), inv_scale, zero_point);
  }
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
