// The last conv (C -> 3, k x k: SRResNet's 9x9, RRDBNet's 3x3) on AMX tiles, bf16 products summed in fp32. The
// 3 outputs alone would fill 3 of a tile's 16 columns, so the columns hold up to 5 horizontal taps x 3 outputs
// instead: with r = k / 2 and S taps a group (5, or k where k < 5), for input pixel x' of row y + dy - r,
//   Q_g[x'][3 (S - 1 - j) + c] = sum over dy and input channels i of in[y + dy - r][x'][i] * w[c][i][dy][S g + j],
// for the tap groups g (9x9: dx 0-4 and 5-8; 3x3: dx 0-2), summed over the k rows dy in the accumulator tiles
// themselves (the shift from x' to the output depends on dx alone). Output pixel x = x' - S g + (S - 1 - j) -
// (S - 1 - r), so the 3 S columns of Q_g[x'] add to the 3 S floats of the output row from pixel
// x' - S g - (S - 1 - r) on. That is k x groups multiplies per tile row of 16 pixels and 32 channels, against
// k x k with one tap per tile.
// Blocks of 32 input pixels x' (two M tiles) x the groups (one N tile each) in C tiles 0-3; A (16 pixels, kc bf16
// channels of one row) in 4 and 5, B (one row dy and group, kc channels) in 6 and 7. The input is a bf16 map
// read in place, or an fp32 map whose rows are rounded to bf16 once per thread into a ring of k rows on cache
// lines. The row sums go to accumulator rows by x' mod 6 (3x3: mod 3), so that consecutive pixels' overlapping
// adds never wait on each other's stores. Templated on the kernel size and the tile implementation
// (amx_tiles.h).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "ops/cpu/amx_bf16_kernels.h"
#include "ops/cpu/amx_tiles.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

constexpr int kAmxTailBlock = 32, kAmxTailWays = 6;

// The geometry of a k x k tail on tiles (see the top of the file).
template <int Kernel>
struct AmxTailShape {
  static_assert(Kernel == 3 || Kernel == 9, "the tails on tiles are 3x3 and 9x9");
  static constexpr int radius = Kernel / 2;
  static constexpr int group_taps = tail_tile_group_taps(Kernel), groups = tail_tile_groups(Kernel);
  static constexpr int shift = group_taps - 1 - radius;  // Q_g[x'] adds from output pixel x' - S g - shift on
  static constexpr int left = radius + group_taps * (groups - 1) + shift;  // output pixels before 0 that get adds
  // Accumulator rows, and the floats of Q an add moves: the 16 of a 9x9 tail's pixel span 6 output pixels, the 9
  // of a 3x3 one's (masked) 3.
  static constexpr int ways = Kernel == 9 ? kAmxTailWays : 3;
  static constexpr __mmask16 window = Kernel == 9 ? 0xFFFF : 0x1FF;
};

// Tiles: C 0-3 (16 pixels x 16 fp32 sums each), A 4 and 5 (16 pixels x kc bf16), B 6 and 7.
inline TileConfig amx_tail_config(int a_bytes) {
  TileConfig config;
  for (int t = 0; t < 4; ++t) config.rows[t] = 16, config.colsb[t] = 64;
  for (int t : {4, 5}) config.rows[t] = 16, config.colsb[t] = uint16_t(a_bytes);
  for (int t : {6, 7}) config.rows[t] = uint8_t(a_bytes / 4), config.colsb[t] = 64;
  return config;
}

// Input pixels x' = -r .. w - 1 + r feed the outputs 0 .. w - 1, in whole blocks of 32.
template <int Kernel>
inline int amx_tail_blocks(int w) {
  return (w + 2 * AmxTailShape<Kernel>::radius + kAmxTailBlock - 1) / kAmxTailBlock;
}

// Q for input pixels x0' .. x0' + 31 in the accumulator tiles (group g of pixels 16 i.. in tile 2 i + g);
// rows[dy] points at pixel -r of row y + dy - r, whose pixels are `pixel_values` bf16 apart, of which the first c
// are the input channels. after_row(dy) runs once the multiplies of row dy are issued (a part of the block
// before's deferred work).
template <int Kernel, class Tiles, class AfterRow>
inline void amx_tail_multiply(Tiles& tiles, const uint16_t* const rows[Kernel], int64_t pixel_values,
                              const uint16_t* weights, int x0, int c, int kc, const AfterRow& after_row) {
  using Shape = AmxTailShape<Kernel>;
  const int64_t a_stride = pixel_values * 2, group_values = int64_t(c) * 16;  // bf16 values of one B slab
  tiles.template zero<0>(), tiles.template zero<2>();
  if constexpr (Shape::groups > 1) tiles.template zero<1>(), tiles.template zero<3>();
  for (int dy = 0; dy < Kernel; ++dy) {
    const uint16_t* a = rows[dy] + (x0 + Shape::radius) * pixel_values;
    const uint16_t* b = weights + dy * Shape::groups * group_values;
    for (int k0 = 0; k0 < c; k0 += kc, a += kc, b += kc * 16) {
      tiles.template load<6>(b, 64);
      tiles.template load<4>(a, a_stride), tiles.template dpbf16ps<0, 4, 6>();
      if constexpr (Shape::groups > 1) tiles.template load<7>(b + group_values, 64), tiles.template dpbf16ps<1, 4, 7>();
      tiles.template load<5>(a + 16 * pixel_values, a_stride), tiles.template dpbf16ps<2, 5, 6>();
      if constexpr (Shape::groups > 1) tiles.template dpbf16ps<3, 5, 7>();
    }
    after_row(dy);
  }
}

// The block's Q of pixels x0' + [first, end) added along the output row: pixel x' of group g to the floats from
// output pixel x' - S g - shift on (Shape::window of them; Q's columns past 3 S are zero), in the accumulator
// row of x' mod Shape::ways.
template <int Kernel>
inline void amx_tail_accumulate(const float (*sums)[AmxTailShape<Kernel>::groups][16], int x0, int first, int end,
                                float* accumulators, int acc_floats, int origin) {
  using Shape = AmxTailShape<Kernel>;
  for (int i = first; i < end; ++i) {
    float* acc = accumulators + ((x0 + i) % Shape::ways + Shape::ways) % Shape::ways * acc_floats;
    for (int g = 0; g < Shape::groups; ++g) {
      float* at = acc + origin + 3 * (x0 + i - Shape::group_taps * g - Shape::shift);
      const __m512 sum = _mm512_add_ps(_mm512_maskz_loadu_ps(Shape::window, at), _mm512_load_ps(sums[i][g]));
      _mm512_mask_storeu_ps(at, Shape::window, sum);
    }
  }
}

// The row's outputs: bias + the accumulator rows, in that order, clamped, scaled, rounded half to even
// (image_value's rule, 16 at a time) and stored in the image dtype.
template <int Ways, class T>
inline void amx_tail_store_row(const float* accumulators, int acc_floats, int origin, const float* bias_pattern,
                               float scale, int w, T* row) {
  for (int i = 0; i < 3 * w; i += 16) {
    const __mmask16 mask = 3 * w - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (3 * w - i)) - 1);
    __m512 v = _mm512_loadu_ps(bias_pattern + i % 48);
    for (int way = 0; way < Ways; ++way)
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

// bf16_map: read p.in_bf16 (its producer stored it as bf16; its rows are read in place, and the pixels past
// the halo that the last block reads feed only outputs past the row's end), else round p.in's rows.
template <class T, class Tiles, bool bf16_map, int Kernel>
void tail_bf16_tiles_typed(const TailParams& p, const ExecContext& ctx) {
  using Shape = AmxTailShape<Kernel>;
  constexpr int r = Shape::radius, groups = Shape::groups;
  const int c = p.in.c, w = p.in.w, h = p.in.h, kc = c % 32 == 0 ? 32 : 16;  // c: the weights' channels
  const int blocks = amx_tail_blocks<Kernel>(w);
  const int64_t rows_total = int64_t(p.in.n) * h;
  // Accumulator floats of a row: outputs from the first that an add reaches (x' = -r, the last group) to the last
  // block's end, plus one vector of slack for the 16-float adds.
  const int origin = 3 * Shape::left, acc_floats = origin + 3 * blocks * kAmxTailBlock + 16;
  const float scale = full_scale(p.dtype);
  T* out = static_cast<T*>(p.out);
#pragma omp parallel num_threads(ctx.threads)
  {
    Tiles tiles;
    tiles.configure(amx_tail_config(2 * kc));
    // The k input rows y-r .. y+r an output row reads, rounded: row[x' + r][c] for the blocks' pixels, those past
    // column w - 1 + r zero (the map's halo covers -r .. w - 1 + r).
    AmxRowRing<Kernel> converted(bf16_map ? 0 : int64_t(blocks) * kAmxTailBlock * c);
    CacheLineVector<float> accumulators(size_t(Shape::ways) * acc_floats);
    struct Block {  // the deferred step is adding a block's sums along the row
      int image = -1, x0 = 0;
    };
    using Sums = float[groups][16];
    AmxDeferredEpilogue<Block, Sums[kAmxTailBlock]> accumulations;
    const auto accumulate = [&](const Block& b, Sums* sums, int first, int end) {
      amx_tail_accumulate<Kernel>(sums, b.x0, first, end, accumulators.data(), acc_floats, origin);
    };
    alignas(64) float bias_pattern[48 + 16];  // bias[k % 3], from any multiple of 3 on
    for (int i = 0; i < 64; ++i) bias_pattern[i] = p.bias[i % 3];
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows_total; ++row) {
      const int image = int(row / h), y = int(row % h);
      const uint16_t* rows[Kernel];
      if constexpr (bf16_map) {
        for (int dy = 0; dy < Kernel; ++dy) rows[dy] = p.in_bf16.at(image, y - r + dy, -r);
      } else {
        for (int dy = 0; dy < Kernel; ++dy) {
          const int yy = y - r + dy;
          rows[dy] = converted.row(image, yy, [&](uint16_t* into) {
            for (int x = -r; x < w + r; ++x) amx_round_to_bf16(p.in.at(image, yy, x), into + int64_t(x + r) * c, c);
          });
        }
      }
      std::fill(accumulators.begin(), accumulators.end(), 0.f);
      // Each block's sums are added along the row while the next block's multiplies are on the tile unit.
      for (int block = 0; block < blocks; ++block) {
        const int x0 = block * kAmxTailBlock - r;
        amx_tail_multiply<Kernel>(tiles, rows, bf16_map ? p.in_bf16.c : c, p.weight_tiles, x0, c, kc,
                                  [&](int dy) { accumulations.part(accumulate, dy, Kernel); });
        Sums* sums = accumulations.next(Block{image, x0});
        constexpr int stride = groups * 16 * 4;  // bytes of a pixel's sums
        tiles.template store<0>(&sums[0][0][0], stride), tiles.template store<2>(&sums[16][0][0], stride);
        if constexpr (groups > 1)
          tiles.template store<1>(&sums[0][1][0], stride), tiles.template store<3>(&sums[16][1][0], stride);
      }
      accumulations.flush(accumulate);
      amx_tail_store_row<Shape::ways>(accumulators.data(), acc_floats, origin, bias_pattern, scale, w,
                         out + (int64_t(image) * h + y) * w * 3);
    }
    tiles.release();
  }
}

template <class Tiles, bool bf16_map, int Kernel>
void tail_bf16_tiles_kernel(const TailParams& p, const ExecContext& ctx) {
  switch (p.dtype) {
    case DType::u8: tail_bf16_tiles_typed<uint8_t, Tiles, bf16_map, Kernel>(p, ctx); break;
    case DType::u16: tail_bf16_tiles_typed<uint16_t, Tiles, bf16_map, Kernel>(p, ctx); break;
    case DType::f32: tail_bf16_tiles_typed<float, Tiles, bf16_map, Kernel>(p, ctx); break;
  }
}

template <class Tiles, bool bf16_map>
void tail_bf16_tiles(const TailParams& p, const ExecContext& ctx) {
  if (p.kernel == 3) tail_bf16_tiles_kernel<Tiles, bf16_map, 3>(p, ctx);
  else tail_bf16_tiles_kernel<Tiles, bf16_map, 9>(p, ctx);
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
