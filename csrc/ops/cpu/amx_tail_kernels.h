// The 9x9 tail (C -> 3) on AMX tiles, bf16 products summed in fp32, as an implicit GEMM: M = 64 pixels of an
// output row (four 16-pixel accumulator tiles), N = 16 (the 3 output channels and 13 zero columns), K = 81 taps
// x C. The zero columns cost 13/16 of the multiplies, yet one TDPBF16PS does 16x the work of an AVX-512 FMA,
// so the tile unit still outruns the fp32 Winograd tail on vector units. Each input row (fp32, halo included)
// is rounded to bf16 once per thread into a ring of nine rows (on cache lines), padded to whole 64-pixel
// blocks, from which each tap's A tile is a load at the tap's shifted address; the B tile of a tap and 32 (or
// 16) input channels is 1 KiB (or 512 B) of TailWeights::weight_tiles. Sums past the row's end are computed and dropped.
// Templated on the SIMD traits S (image_value) and the tile implementation (amx_tiles.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/cpu/amx_bf16_kernels.h"
#include "ops/cpu/amx_tiles.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

constexpr int kAmxTailBlock = 64, kAmxTailRadius = 4;

// Tiles: C 0-3 (16 pixels x 16 fp32 sums each), A 4 and 5 in turn (16 pixels x kc bf16), B 6 and 7 in turn.
inline TileConfig amx_tail_config(int a_bytes) {
  TileConfig config;
  for (int t = 0; t < 4; ++t) config.rows[t] = 16, config.colsb[t] = 64;
  for (int t : {4, 5}) config.rows[t] = 16, config.colsb[t] = uint16_t(a_bytes);
  for (int t : {6, 7}) config.rows[t] = uint8_t(a_bytes / 4), config.colsb[t] = 64;
  return config;
}

// The nine input rows y-4 .. y+4 an output row reads, in bf16: row[x + 4][c] for x = -4 .. padded width + 3,
// the columns past the halo zero. A ring tagged with the (image, row) each slot holds.
class AmxTailRows {
 public:
  AmxTailRows(int w, int c)
      : w_(w), c_(c), width_((w + kAmxTailBlock - 1) / kAmxTailBlock * kAmxTailBlock + 2 * kAmxTailRadius),
        storage_(size_t(9) * width_ * c, 0) {}
  void prepare(const FeatureMap& in, int image, int y, const uint16_t* rows[9]) {
    for (int r = 0; r < 9; ++r) {
      const int yy = y - kAmxTailRadius + r, slot = (yy + 9) % 9;
      uint16_t* row = storage_.data() + int64_t(slot) * width_ * c_;
      if (tag_[slot][0] != image || tag_[slot][1] != yy) {
        // Columns -4 .. w+3 are the map's (its halo is zero); the rest of the slot stays zero.
        for (int x = -kAmxTailRadius; x < w_ + kAmxTailRadius; ++x)
          amx_round_to_bf16(in.at(image, yy, x), row + int64_t(x + kAmxTailRadius) * c_, c_);
        tag_[slot][0] = image, tag_[slot][1] = yy;
      }
      rows[r] = row;
    }
  }

 private:
  int w_, c_, width_;
  CacheLineVector<uint16_t> storage_;
  int tag_[9][2] = {{-1, -10}, {-1, -10}, {-1, -10}, {-1, -10}, {-1, -10},
                    {-1, -10}, {-1, -10}, {-1, -10}, {-1, -10}};
};

// One tap and chunk of input channels for the four 16-pixel segments at a: B alternates between tiles 6 and 7
// from one step to the next, so that the next step's weights load while this step's multiplies run.
template <int B, class Tiles>
inline void amx_tail_step(Tiles& tiles, const uint16_t* a, const uint16_t* b, int c) {
  const int64_t stride = int64_t(c) * 2;
  tiles.template load<B>(b, 64);
  tiles.template load<4>(a, stride), tiles.template dpbf16ps<0, 4, B>();
  tiles.template load<5>(a + 16 * c, stride), tiles.template dpbf16ps<1, 5, B>();
  tiles.template load<4>(a + 32 * c, stride), tiles.template dpbf16ps<2, 4, B>();
  tiles.template load<5>(a + 48 * c, stride), tiles.template dpbf16ps<3, 5, B>();
}

template <class S, class T, class Tiles>
void tail_bf16_tiles_typed(const TailParams& p, const ExecContext& ctx) {
  const int c = p.in.c, w = p.in.w, h = p.in.h, kc = c % 32 == 0 ? 32 : 16;
  const int64_t rows_total = int64_t(p.in.n) * h, tap_values = int64_t(c) * 16;  // bf16 values of a tap's B
  const float scale = full_scale(p.dtype);
  T* out = static_cast<T*>(p.out);
#pragma omp parallel num_threads(ctx.threads)
  {
    Tiles tiles;
    tiles.configure(amx_tail_config(2 * kc));
    AmxTailRows converted(w, c);
    alignas(64) float sums[kAmxTailBlock][16];
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows_total; ++r) {
      const int image = int(r / h), y = int(r % h);
      const uint16_t* rows[9];
      converted.prepare(p.in, image, y, rows);
      for (int x0 = 0; x0 < w; x0 += kAmxTailBlock) {
        tiles.template zero<0>(), tiles.template zero<1>(), tiles.template zero<2>(), tiles.template zero<3>();
        int step = 0;
        for (int tap = 0; tap < 81; ++tap) {
          const uint16_t* a = rows[tap / 9] + int64_t(x0 + tap % 9) * c;
          const uint16_t* b = p.weight_tiles + tap * tap_values;
          for (int k0 = 0; k0 < c; k0 += kc, a += kc, b += kc * 16, ++step) {
            if (step % 2 == 0) amx_tail_step<6>(tiles, a, b, c);
            else amx_tail_step<7>(tiles, a, b, c);
          }
        }
        tiles.template store<0>(&sums[0][0], 64), tiles.template store<1>(&sums[16][0], 64);
        tiles.template store<2>(&sums[32][0], 64), tiles.template store<3>(&sums[48][0], 64);
        T* row = out + ((int64_t(image) * h + y) * w + x0) * 3;
        for (int i = 0; i < std::min(kAmxTailBlock, w - x0); ++i)
          for (int k = 0; k < 3; ++k) row[i * 3 + k] = image_value<S, T>(sums[i][k] + p.bias[k], scale);
      }
    }
    tiles.release();
  }
}

template <class S, class Tiles>
void tail_bf16_tiles(const TailParams& p, const ExecContext& ctx) {
  switch (p.dtype) {
    case DType::u8: tail_bf16_tiles_typed<S, uint8_t, Tiles>(p, ctx); break;
    case DType::u16: tail_bf16_tiles_typed<S, uint16_t, Tiles>(p, ctx); break;
    case DType::f32: tail_bf16_tiles_typed<S, float, Tiles>(p, ctx); break;
  }
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
