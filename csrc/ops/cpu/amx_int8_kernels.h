// int8 3x3 convolution on AMX tiles, as an implicit GEMM: M = 16 pixels of an output row, N = 64 output
// channels (four 16x16 s32 accumulator tiles), K = 9 taps x cin, each tap's A tile loaded straight from the
// u8 code map with the map's pixel stride (the tap's shift is an address: no im2col copy), its B tile from the
// same packed weights the VNNI kernel reads ([tap][cin/4][cout][4] is AMX's quad-interleaved layout). The
// sums then go through the VNNI kernel's epilogue (int8_epilogue.h), so both paths give the same bits.
// Templated on the SIMD traits S (the epilogue) and the tile implementation (amx_tiles.h).
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/cpu/amx_tiles.h"
#include "ops/cpu/int8_epilogue.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

constexpr int kAmxPixels = 16, kAmxChannels = 64;

// Whether the tile kernel takes this conv; the others run on the VNNI kernel.
inline bool amx_int8_fits(const PackedConv3x3Int8& wt) {
  return wt.cin % 64 == 0 && wt.cout % kAmxChannels == 0;
}

template <class Tiles, int C>
inline void amx_int8_multiply(Tiles& tiles, const int8_t* weights, int64_t weight_stride) {
  tiles.template load<5>(weights + C * 64, weight_stride);
  tiles.template dpbusd<C, 4, 5>();
}

// A block of output pixels (y, x0 .. x0+m-1) x channels co0 .. co0+63.
struct AmxInt8Block {
  int image = -1, y = 0, x0 = 0, m = 0, co0 = 0;
};
using AmxInt8Epilogues = AmxDeferredEpilogue<AmxInt8Block, int32_t[kAmxPixels][kAmxChannels]>;

// The epilogue of the block's sums rows (pixels) [first, end).
template <class S>
void amx_int8_epilogue(const Conv3x3Int8Params& p, const AmxInt8Block& b, int32_t (*sums)[kAmxChannels], int first,
                       int end) {
  using vi = typename S::vi;
  for (int j = 0; j < kAmxChannels; j += S::W) {
    const vi compensation = S::load_i(p.weights->compensation + b.co0 + j);
    for (int i = first; i < std::min(end, b.m); ++i)
      store_int8_sum<S>(p, b.image, b.y, b.x0 + i, b.co0 + j, S::sub_i(S::load_i(&sums[i][j]), compensation));
  }
}

// Multiplies `block` from the tiles configured for its m rows, running the epilogue of the block before in nine
// parts between the taps.
template <class S, class Tiles, class Epilogue>
void conv3x3_int8_tile_block(const Conv3x3Int8Params& p, Tiles& tiles, const AmxInt8Block& block,
                             AmxInt8Epilogues& epilogues, const Epilogue& epilogue) {
  const PackedConv3x3Int8& wt = *p.weights;
  const int64_t weight_stride = int64_t(wt.cout) * 4;  // bytes from one quad of input channels to the next
  tiles.template zero<0>(), tiles.template zero<1>(), tiles.template zero<2>(), tiles.template zero<3>();
  for (int tap = 0; tap < 9; ++tap) {
    const uint8_t* src = p.in.at(block.image, block.y + tap / 3 - 1, block.x0 + tap % 3 - 1);
    for (int k0 = 0; k0 < wt.cin; k0 += 64) {
      tiles.template load<4>(src + k0, p.in.c);
      const int8_t* w = wt.w + ((int64_t(tap) * (wt.cin / 4) + k0 / 4) * wt.cout + block.co0) * 4;
      amx_int8_multiply<Tiles, 0>(tiles, w, weight_stride);
      amx_int8_multiply<Tiles, 1>(tiles, w, weight_stride);
      amx_int8_multiply<Tiles, 2>(tiles, w, weight_stride);
      amx_int8_multiply<Tiles, 3>(tiles, w, weight_stride);
    }
    epilogues.part(epilogue, tap, 9);
  }
  constexpr int64_t row_bytes = kAmxChannels * 4;
  int32_t (*out)[kAmxChannels] = epilogues.next(block);
  tiles.template store<0>(&out[0][0], row_bytes), tiles.template store<1>(&out[0][16], row_bytes);
  tiles.template store<2>(&out[0][32], row_bytes), tiles.template store<3>(&out[0][48], row_bytes);
}

// One work item per output row, as the VNNI kernel; each thread configures its tiles when its block height
// changes (a row's last block may be narrower than 16 pixels) and releases them at the end.
template <class S, class Tiles>
void conv3x3_int8_tiles(const Conv3x3Int8Params& p, const ExecContext& ctx) {
  const int64_t rows = int64_t(p.in.n) * p.in.h;
  const int cout = p.weights->cout;
#pragma omp parallel num_threads(ctx.threads)
  {
    Tiles tiles;
    int configured = 0;
    AmxInt8Epilogues epilogues;
    const auto epilogue = [&](const AmxInt8Block& b, int32_t (*sums)[kAmxChannels], int first, int end) {
      amx_int8_epilogue<S>(p, b, sums, first, end);
    };
#pragma omp for schedule(dynamic)
    for (int64_t r = 0; r < rows; ++r) {
      const int image = int(r / p.in.h), y = int(r % p.in.h);
      for (int x0 = 0; x0 < p.in.w; x0 += kAmxPixels) {
        const int m = std::min(kAmxPixels, p.in.w - x0);
        if (m != configured) tiles.configure(amx_block_config(m, 64)), configured = m;
        for (int co0 = 0; co0 < cout; co0 += kAmxChannels) {
          AmxInt8Block block;
          block.image = image, block.y = y, block.x0 = x0, block.m = m, block.co0 = co0;
          conv3x3_int8_tile_block<S>(p, tiles, block, epilogues, epilogue);
        }
      }
    }
    epilogues.flush(epilogue);
    tiles.release();
  }
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
