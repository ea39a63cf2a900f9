// The 9x9 tail (C -> 3) on AMX tiles, bf16 products summed in fp32. The 3 outputs alone would fill 3 of a tile's
// 16 columns, so the columns hold 5 horizontal taps x 3 outputs instead: for input pixel x' of row y + dy - 4,
//   Q_g[x'][3 (4 - j) + c] = sum over dy and input channels k of in[y + dy - 4][x'][k] * w[c][k][dy][5g + j],
// for the tap groups g = 0 (dx 0-4) and g = 1 (dx 5-8, j < 4), summed over the nine rows dy in the accumulator
// tiles themselves (the shift from x' to the output depends on dx alone). Output pixel x = x' - 5g + (4 - j), so
//   out[x][c] = sum over g, x' of Q_g[x'][3 x + c - 3 (x' - 5 g)],
// the 15 columns of Q_g[x'] added to the 15 floats of the output row from pixel x' - 5g on. That is 9 x 2
// multiplies per tile row of 16 pixels and 32 channels, against 81 with one tap per tile.
// Blocks of 32 input pixels x' (two M tiles) x both groups (two N tiles) in C tiles 0-3; A (16 pixels, kc bf16
// channels of one row) in 4 and 5, B (one row dy and group, kc channels) in 6 and 7. The input is a bf16 map
// read in place, or an fp32 map whose rows are rounded to bf16 once per thread into a ring of nine rows on
// cache lines. The row sums go to six accumulator rows by x' mod 6, so that consecutive pixels' overlapping
// 15-float adds never wait on each other's stores. Templated on the tile implementation (amx_tiles.h).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "ops/cpu/amx_bf16_kernels.h"
#include "ops/cpu/amx_tiles.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

constexpr int kAmxTailBlock = 32, kAmxTailRadius = 4, kAmxTailWays = 6;

// Tiles: C 0-3 (16 pixels x 16 fp32 sums each), A 4 and 5 (16 pixels x kc bf16), B 6 and 7.
inline TileConfig amx_tail_config(int a_bytes) {
  TileConfig config;
  for (int t = 0; t < 4; ++t) config.rows[t] = 16, config.colsb[t] = 64;
  for (int t : {4, 5}) config.rows[t] = 16, config.colsb[t] = uint16_t(a_bytes);
  for (int t : {6, 7}) config.rows[t] = uint8_t(a_bytes / 4), config.colsb[t] = 64;
  return config;
}

// Input pixels x' = -4 .. w + 3 feed the outputs 0 .. w - 1, in whole blocks of 32.
inline int amx_tail_blocks(int w) { return (w + 2 * kAmxTailRadius + kAmxTailBlock - 1) / kAmxTailBlock; }

// Q for input pixels x0' .. x0' + 31 in the accumulator tiles; rows[dy] points at pixel -4 of row y + dy - 4,
// whose pixels are `pixel_values` bf16 apart, of which the first c are the input channels. after_row(dy) runs
// once the multiplies of row dy are issued (a part of the block before's deferred work).
template <class Tiles, class AfterRow>
inline void amx_tail_multiply(Tiles& tiles, const uint16_t* const rows[9], int64_t pixel_values,
                              const uint16_t* weights, int x0, int c, int kc, const AfterRow& after_row) {
  const int64_t a_stride = pixel_values * 2, group_values = int64_t(c) * 16;  // bf16 values of one B slab
  tiles.template zero<0>(), tiles.template zero<1>(), tiles.template zero<2>(), tiles.template zero<3>();
  for (int dy = 0; dy < 9; ++dy) {
    const uint16_t* a = rows[dy] + (x0 + kAmxTailRadius) * pixel_values;
    const uint16_t* b = weights + dy * 2 * group_values;
    for (int k0 = 0; k0 < c; k0 += kc, a += kc, b += kc * 16) {
      tiles.template load<6>(b, 64);
      tiles.template load<4>(a, a_stride), tiles.template dpbf16ps<0, 4, 6>();
      tiles.template load<7>(b + group_values, 64), tiles.template dpbf16ps<1, 4, 7>();
      tiles.template load<5>(a + 16 * pixel_values, a_stride), tiles.template dpbf16ps<2, 5, 6>();
      tiles.template dpbf16ps<3, 5, 7>();
    }
    after_row(dy);
  }
}

// The block's Q of pixels x0' + [first, end) added along the output row: pixel x' of group g to the 15 floats
// from output pixel x' - 5g on, in the accumulator row of x' mod 6 (column 15 of Q is zero).
inline void amx_tail_accumulate(const float (*sums)[2][16], int x0, int first, int end, float* accumulators,
                                int acc_floats, int origin) {
  for (int i = first; i < end; ++i) {
    float* acc = accumulators + ((x0 + i) % kAmxTailWays + kAmxTailWays) % kAmxTailWays * acc_floats;
    for (int g = 0; g < 2; ++g) {
      float* at = acc + origin + 3 * (x0 + i - 5 * g);
      _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), _mm512_load_ps(sums[i][g])));
    }
  }
}

// The row's outputs: bias + the six accumulator rows, in that order, clamped, scaled, rounded half to even
// (image_value's rule, 16 at a time) and stored in the image dtype.
template <class T>
inline void amx_tail_store_row(const float* accumulators, int acc_floats, int origin, const float* bias_pattern,
                               float scale, int w, T* row) {
  for (int i = 0; i < 3 * w; i += 16) {
    const __mmask16 mask = 3 * w - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (3 * w - i)) - 1);
    __m512 v = _mm512_loadu_ps(bias_pattern + i % 48);
    for (int way = 0; way < kAmxTailWays; ++way)
      v = _mm512_add_ps(v, _mm512_loadu_ps(accumulators + way * acc_floats + origin + i));
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(1.f));
    if constexpr (sizeof(T) == 4) {
      _mm512_mask_storeu_ps(row + i, mask, v);
    } else {
      const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(v, _mm512_set1_ps(scale)));  // MXCSR: nearest even
      if constexpr (sizeof(T) == 1) _mm512_mask_cvtusepi32_storeu_epi8(row + i, mask, q);
      else _mm512_mask_cvtusepi32_storeu_epi16(row + i, mask, q);
    }
  }
}

// bf16_map: read p.in_bf16 (the upsampler stored it as bf16; its rows are read in place, and the pixels past
// the halo that the last block reads feed only outputs past the row's end), else round p.in's rows.
template <class T, class Tiles, bool bf16_map>
void tail_bf16_tiles_typed(const TailParams& p, const ExecContext& ctx) {
  const int c = p.in.c, w = p.in.w, h = p.in.h, kc = c % 32 == 0 ? 32 : 16;  // c: the weights' channels
  const int blocks = amx_tail_blocks(w);
  const int64_t rows_total = int64_t(p.in.n) * h;
  // Accumulator floats of a row: outputs from pixel -9 (x' = -4, group 1) to the last block's end, plus one
  // vector of slack for the 16-float adds.
  const int origin = 3 * (kAmxTailRadius + 5), acc_floats = origin + 3 * blocks * kAmxTailBlock + 16;
  const float scale = full_scale(p.dtype);
  T* out = static_cast<T*>(p.out);
#pragma omp parallel num_threads(ctx.threads)
  {
    Tiles tiles;
    tiles.configure(amx_tail_config(2 * kc));
    // The nine input rows y-4 .. y+4 an output row reads, rounded: row[x' + 4][c] for the blocks' pixels, those
    // past column w + 3 zero (the map's halo covers -4 .. w+3).
    AmxRowRing<9> converted(bf16_map ? 0 : int64_t(blocks) * kAmxTailBlock * c);
    CacheLineVector<float> accumulators(size_t(kAmxTailWays) * acc_floats);
    struct Block {  // the deferred step is adding a block's sums along the row
      int image = -1, x0 = 0;
    };
    AmxDeferredEpilogue<Block, float[kAmxTailBlock][2][16]> accumulations;
    const auto accumulate = [&](const Block& b, float (*sums)[2][16], int first, int end) {
      amx_tail_accumulate(sums, b.x0, first, end, accumulators.data(), acc_floats, origin);
    };
    alignas(64) float bias_pattern[48 + 16];  // bias[k % 3], from any multiple of 3 on
    for (int i = 0; i < 64; ++i) bias_pattern[i] = p.bias[i % 3];
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows_total; ++r) {
      const int image = int(r / h), y = int(r % h);
      const uint16_t* rows[9];
      if constexpr (bf16_map) {
        for (int dy = 0; dy < 9; ++dy) rows[dy] = p.in_bf16.at(image, y - kAmxTailRadius + dy, -kAmxTailRadius);
      } else {
        for (int dy = 0; dy < 9; ++dy) {
          const int yy = y - kAmxTailRadius + dy;
          rows[dy] = converted.row(image, yy, [&](uint16_t* row) {
            for (int x = -kAmxTailRadius; x < w + kAmxTailRadius; ++x)
              amx_round_to_bf16(p.in.at(image, yy, x), row + int64_t(x + kAmxTailRadius) * c, c);
          });
        }
      }
      std::fill(accumulators.begin(), accumulators.end(), 0.f);
      // Each block's sums are added along the row while the next block's multiplies are on the tile unit.
      for (int block = 0; block < blocks; ++block) {
        const int x0 = block * kAmxTailBlock - kAmxTailRadius;
        amx_tail_multiply(tiles, rows, bf16_map ? p.in_bf16.c : c, p.weight_tiles, x0, c, kc,
                          [&](int dy) { accumulations.part(accumulate, dy, 9); });
        float (*sums)[2][16] = accumulations.next(Block{image, x0});
        tiles.template store<0>(&sums[0][0][0], 128), tiles.template store<1>(&sums[0][1][0], 128);
        tiles.template store<2>(&sums[16][0][0], 128), tiles.template store<3>(&sums[16][1][0], 128);
      }
      accumulations.flush(accumulate);
      amx_tail_store_row(accumulators.data(), acc_floats, origin, bias_pattern, scale, w,
                         out + (int64_t(image) * h + y) * w * 3);
    }
    tiles.release();
  }
}

template <class Tiles, bool bf16_map>
void tail_bf16_tiles(const TailParams& p, const ExecContext& ctx) {
  switch (p.dtype) {
    case DType::u8: tail_bf16_tiles_typed<uint8_t, Tiles, bf16_map>(p, ctx); break;
    case DType::u16: tail_bf16_tiles_typed<uint16_t, Tiles, bf16_map>(p, ctx); break;
    case DType::f32: tail_bf16_tiles_typed<float, Tiles, bf16_map>(p, ctx); break;
  }
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
