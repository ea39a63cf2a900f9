// Intel AMX tiles, seen through one small interface with two implementations, so that the AMX kernels run
// (and are tested) on any CPU with AVX-512 through a software model of the instructions:
//   HardwareTiles  the real instructions (only in kernels_amx.cpp, compiled with -mamx-tile -mamx-int8);
//   EmulatedTiles  the instruction set reference's definitions in plain C++: TDPBUSD adds, to each s32 lane
//                  of C, the four products of zero-extended u8 bytes of A and sign-extended s8 bytes of B,
//                  wrapping in 32 bits; TDPBF16PS the two products of bf16 pairs, in fp32.
// A kernel configures its tiles once per thread (configure), then loads, multiplies and stores tiles by their
// register number, a template argument as the instructions require.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace srgan_fast::cpu {

// The 64-byte operand of LDTILECFG (palette 1): the rows and bytes per row of each of the 8 tile registers.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// The kernels' tiles for a block of m output pixels: C 0-3, m rows of 16 32-bit sums; A 4, m pixels of
// a_bytes input values (64 u8 codes, or 32 or 16 bf16); B 5, the weights' a_bytes / 4 rows of 4-byte groups
// (quads of s8, pairs of bf16) for 16 output channels.
inline TileConfig amx_block_config(int m, int a_bytes) {
  TileConfig config;
  for (int t = 0; t < 4; ++t) config.rows[t] = uint8_t(m), config.colsb[t] = 64;
  config.rows[4] = uint8_t(m), config.colsb[4] = uint16_t(a_bytes);
  config.rows[5] = uint8_t(a_bytes / 4), config.colsb[5] = 64;
  return config;
}

// A block's sums wait in one of two buffers for their epilogue (vector work), which runs while the tile unit works
// on the next block; the next block's sums then go to the other buffer. The block kernels run it in parts between
// their multiplies rather than at once after them, where its instructions queue behind the tile instructions
// (rrdbnet's int8 dense blocks ran 4-5% faster so, docs/native.md): nine, one after each tap, at bf16; three at
// int8, where each part's fixed cost weighed more. An epilogue is called as
// epilogue(block, sums, first, end) for the sums' rows [first, end) (rows: Sums' first dimension).
// Block: what the epilogue needs of a block, with an `image` below 0 for none; Sums: one block's sums.
template <class Block, class Sums>
class AmxDeferredEpilogue {
 public:
  static constexpr int kRows = int(std::extent_v<Sums>);
  // Part `part` of `parts` of the waiting block's epilogue, if one waits.
  template <class Epilogue>
  void part(const Epilogue& epilogue, int part, int parts) {
    if (pending_.image >= 0) epilogue(pending_, sums_[1 - current_], kRows * part / parts, kRows * (part + 1) / parts);
  }
  // Called once `block`'s multiplies are issued and every part of the epilogue before it has run: the buffer
  // that `block`'s tiles are to be stored to.
  Sums& next(const Block& block) {
    Sums& destination = sums_[current_];
    pending_ = block, current_ = 1 - current_;
    return destination;
  }
  // The epilogue of the last block, if one waits.
  template <class Epilogue>
  void flush(const Epilogue& epilogue) {
    part(epilogue, 0, 1);
    pending_.image = -1;
  }

 private:
  alignas(64) Sums sums_[2];
  Block pending_;
  int current_ = 0;
};

class EmulatedTiles {
 public:
  void configure(const TileConfig& config) {
    for (int t = 0; t < 8; ++t) {
      tiles_[t].rows = config.rows[t], tiles_[t].colsb = config.colsb[t];
      std::memset(tiles_[t].bytes, 0, sizeof(tiles_[t].bytes));
    }
  }
  template <int T> void zero() { std::memset(tiles_[T].bytes, 0, sizeof(tiles_[T].bytes)); }
  template <int T> void load(const void* source, int64_t stride) {
    Tile& t = tiles_[T];
    for (int r = 0; r < t.rows; ++r) std::memcpy(t.bytes[r], static_cast<const uint8_t*>(source) + r * stride, t.colsb);
  }
  template <int T> void store(void* destination, int64_t stride) const {
    const Tile& t = tiles_[T];
    for (int r = 0; r < t.rows; ++r) std::memcpy(static_cast<uint8_t*>(destination) + r * stride, t.bytes[r], t.colsb);
  }
  // C[m][n] += sum over k < colsb(A)/4 and j < 4 of u8 A[m][4k+j] * s8 B[k][4n+j]  (TDPBUSD)
  template <int C, int A, int B> void dpbusd() {
    Tile &c = tiles_[C], &a = tiles_[A], &b = tiles_[B];
    for (int m = 0; m < c.rows; ++m)
      for (int n = 0; n < c.colsb / 4; ++n) {
        uint32_t sum;
        std::memcpy(&sum, c.bytes[m] + 4 * n, 4);
        for (int k = 0; k < a.colsb / 4; ++k)
          for (int j = 0; j < 4; ++j)
            sum += uint32_t(int32_t(a.bytes[m][4 * k + j]) * int32_t(int8_t(b.bytes[k][4 * n + j])));
        std::memcpy(c.bytes[m] + 4 * n, &sum, 4);
      }
  }
  // C[m][n] += A[m][2k] * B[k][2n] + A[m][2k+1] * B[k][2n+1] over k < colsb(A)/4, on bf16 widened to fp32
  // (the products are exact in fp32), added one at a time in fp32 rounded to nearest even  (TDPBF16PS; the
  // instruction also flushes denormals, which this model leaves as they are)
  template <int C, int A, int B> void dpbf16ps() {
    Tile &c = tiles_[C], &a = tiles_[A], &b = tiles_[B];
    const auto widen = [](const uint8_t* bf16) {
      uint32_t bits = uint32_t(bf16[0] | (bf16[1] << 8)) << 16;
      float value;
      std::memcpy(&value, &bits, 4);
      return value;
    };
    for (int m = 0; m < c.rows; ++m)
      for (int n = 0; n < c.colsb / 4; ++n) {
        float sum;
        std::memcpy(&sum, c.bytes[m] + 4 * n, 4);
        for (int k = 0; k < a.colsb / 4; ++k)
          for (int j = 0; j < 2; ++j) sum += widen(a.bytes[m] + 4 * k + 2 * j) * widen(b.bytes[k] + 4 * n + 2 * j);
        std::memcpy(c.bytes[m] + 4 * n, &sum, 4);
      }
  }
  void release() {}

 private:
  struct Tile {
    int rows = 0, colsb = 0;
    uint8_t bytes[16][64];
  };
  Tile tiles_[8];
};

}  // namespace srgan_fast::cpu
