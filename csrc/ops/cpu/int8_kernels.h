// int8 3x3 direct convolution, templated on the SIMD traits S of an instruction set with u8 x s8 dot products
// into s32 (S::dot_u8s8: VPDPBUSD on AVX512_VNNI): four input channels per 32-bit lane, summed exactly; then
// the fused epilogue of int8_epilogue.h per output vector. (AVX2 runs int8_winograd_kernels.h instead.)
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/cpu/int8_epilogue.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// Output pixels (y, x0 .. x0+count-1), channels co0 .. co0+W*NV-1. Pixels past count are computed from the
// halo and dropped, so a row needs no remainder loop.
template <class S, int NV>
void conv3x3_int8_pixels(const Conv3x3Int8Params& p, int image, int y, int x0, int co0, int count) {
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
  for (int j = 0; j < NV; ++j) {
    const vi compensation = S::load_i(wt.compensation + co0 + S::W * j);
    for (int i = 0; i < count; ++i)
      store_int8_sum<S>(p, image, y, x0 + i, co0 + S::W * j, S::sub_i(acc[i][j], compensation));
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

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
