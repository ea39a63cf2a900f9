// bf16 3x3 convolution on AMX tiles (TDPBF16PS, fp32 accumulation), as an implicit GEMM: M = 32 pixels of an
// output row, N = 32 output channels (2 x 2 accumulator tiles of 16 x 16 fp32), K = 9 taps x cin in chunks of
// 32 (or 16) channels. Each tap's A tile is a load at the tap's shifted address in a bf16 row: of the input map
// itself where it is bf16 at the conv's resolution (its halo is the padding), else of a ring of three rows
// with one zero pixel on each side, into which each input row (upsampled where the layer reads its input
// nearest-upsampled) is rounded from fp32, or copied from bf16, about once per thread. B tiles are the
// contiguous 1 KiB (or 512 B) tiles of PackedConv3x3::w_bf16, read as one stream per 16 output channels. The
// epilogue (bias, PReLU, scaled residuals, pixel shuffle) is the Winograd kernel's (conv_epilogue.h), or the
// bf16 store of amx_bf16_prelu_to_bf16. Templated on the SIMD traits S (the epilogue) and the tile
// implementation (amx_tiles.h); amx_dense_block_kernels.h runs the same blocks on its own rows.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ops/cpu/amx_tiles.h"
#include "ops/cpu/conv_epilogue.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

inline bool amx_bf16_fits(const PackedConv3x3& wt) { return wt.w_bf16 != nullptr && wt.cin % 16 == 0; }

// 16 floats rounded to bf16, nearest even, by integer arithmetic: the model's CPUs may lack AVX512_BF16's
// conversion. (This header is compiled only into the amx table, with AVX-512 flags.)
inline __m256i amx_bf16_bits(__m512 values) {
  const __m512i bits = _mm512_castps_si512(values);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i half = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), odd);
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_add_epi32(bits, half), 16));
}

// count floats (a multiple of 16) rounded to bf16 as amx_bf16_bits does.
inline void amx_round_to_bf16(const float* src, uint16_t* dst, int count) {
  for (int c = 0; c < count; c += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c), amx_bf16_bits(_mm512_loadu_ps(src + c)));
}

// Row yy of the conv's input (columns -1 .. w; nearest-upsampled where the layer reads it so) in bf16:
// row[x + 1][c], rounded from the float32 map or copied from the bf16 one. Rows -1 and h read the halo's zeros.
inline void amx_bf16_row(const Conv3x3Params& p, int image, int yy, int w, int cin, uint16_t* row) {
  const int up = p.upsample;
  for (int x = -1; x <= w; ++x) {
    uint16_t* to = row + int64_t(x + 1) * cin;
    if (p.in_bf16.data)
      std::memcpy(to, p.in_bf16.at(image, floor_div(yy, up), floor_div(x, up)), size_t(cin) * 2);
    else
      amx_round_to_bf16(p.in.at(image, floor_div(yy, up), floor_div(x, up)), to, cin);
  }
}

// A ring of `Slots` bf16 rows on cache lines, each tagged with the (image, row) it holds, so that a thread
// walking down its output rows converts each input row once. Slots start zero.
template <int Slots>
class AmxRowRing {
 public:
  explicit AmxRowRing(int64_t row_values)
      : row_values_((row_values + 31) / 32 * 32), storage_(size_t(Slots) * row_values_, 0) {
    for (auto& tag : tags_) tag[0] = -1, tag[1] = 0;  // no image yet
  }
  // Row yy of `image`, filled by fill(row) the first time it is asked for.
  template <class Fill>
  const uint16_t* row(int image, int yy, const Fill& fill) {
    const int slot = (yy % Slots + Slots) % Slots;
    uint16_t* row = storage_.data() + slot * row_values_;
    if (tags_[slot][0] != image || tags_[slot][1] != yy) fill(row), tags_[slot][0] = image, tags_[slot][1] = yy;
    return row;
  }

 private:
  int64_t row_values_;
  CacheLineVector<uint16_t> storage_;
  int tags_[Slots][2];
};

// Input row yy of a conv as bf16 rows (pixel x at row + (x + 1) * pixel values): the bf16 map's own row where the
// conv reads it in place, else `ring`'s, filled from p's input (upsampled as p says) the first time it is asked for.
inline const uint16_t* amx_bf16_input_row(const Conv3x3Params& p, bool in_place, AmxRowRing<3>& ring, int image,
                                          int yy, int w, int cin) {
  if (in_place) return p.in_bf16.at(image, yy, -1);
  return ring.row(image, yy, [&](uint16_t* row) { amx_bf16_row(p, image, yy, w, cin, row); });
}

// The blocking: 2 x 2 accumulator tiles, C[i][j] in tile 2i + j, for output pixels x0 + 16i .. and channels
// co0 + 16j ..; A[i] (16 pixels' kc input channels of one tap) in tile 4 + i, B[j] (those channels' weights for
// 16 output channels) in tile 6 + j. Each A and B tile then feeds two multiplies, which halves the weights read
// per pixel against one row of four accumulators (the weights of a 64 -> 64 layer, 72 KiB, outgrow L1).
inline TileConfig amx_bf16_config(int m0, int m1, int a_bytes) {
  TileConfig config;
  const int m[2] = {m0, m1};
  for (int i = 0; i < 2; ++i) {
    if (m[i] == 0) continue;
    config.rows[2 * i] = config.rows[2 * i + 1] = uint8_t(m[i]);
    config.colsb[2 * i] = config.colsb[2 * i + 1] = 64;
    config.rows[4 + i] = uint8_t(m[i]), config.colsb[4 + i] = uint16_t(a_bytes);
  }
  for (int j = 0; j < 2; ++j) config.rows[6 + j] = uint8_t(a_bytes / 4), config.colsb[6 + j] = 64;
  return config;
}

// A block of output pixels (y, x0 + (16i + r) * x_step), r < m[i], i < mt, x channels co0 .. co0 + 16 nt - 1
// (x_step 2: the pixels of one column parity, amx_upsampled_kernels.h).
struct AmxBf16Block {
  int image = -1, y = 0, x0 = 0, m[2] = {0, 0}, co0 = 0, mt = 0, nt = 0, x_step = 1;
};
using AmxBf16Epilogues = AmxDeferredEpilogue<AmxBf16Block, float[32][32]>;

// The rows of sums r in [first, end) of a block that are pixels: tile i's rows r0 .. r1 - 1 (empty: r0 >= r1).
inline void amx_block_rows(const AmxBf16Block& b, int i, int first, int end, int& r0, int& r1) {
  r0 = std::max(0, first - 16 * i), r1 = std::min(b.m[i], end - 16 * i);
}

// The conv's epilogue (conv_epilogue.h) for the block's sums rows [first, end).
template <class S>
void amx_bf16_epilogue(const Conv3x3Params& p, const AmxBf16Block& b, float (*sums)[32], int first, int end) {
  for (int i = 0; i < b.mt; ++i) {
    int r0, r1;
    amx_block_rows(b, i, first, end, r0, r1);
    if (r0 >= r1) continue;
    for (int j = 0; j < 16 * b.nt; j += S::W) {
      typename S::vf row[16];
      for (int r = r0; r < r1; ++r) row[r - r0] = S::load(&sums[16 * i + r][j]);
      if (b.x_step == 1) {
        store_conv_outputs<S>(p, b.image, b.y, b.x0 + 16 * i + r0, 1, r1 - r0, b.co0 + j, row, r1 - r0);
        continue;
      }
      for (int r = r0; r < r1; ++r)
        store_conv_outputs<S>(p, b.image, b.y, b.x0 + (16 * i + r) * b.x_step, 1, 1, b.co0 + j, &row[r - r0], 1);
    }
  }
}

// Bias and PReLU of a block's sums rows [first, end) into a bf16 map (rounded as amx_bf16_row rounds the maps
// it reads, so that a conv reading it sees the bits it would have rounded from float32):
// out[y][x][co0 + c] = bf16(prelu(sum + bias)).
template <class S>
void amx_bf16_prelu_to_bf16(const PackedConv3x3& wt, const FeatureMapBf16& out, const AmxBf16Block& b,
                            float (*sums)[32], int first, int end) {
  for (int i = 0; i < b.mt; ++i) {
    int r0, r1;
    amx_block_rows(b, i, first, end, r0, r1);
    if (r0 >= r1) continue;
    // the block's first pixel of these rows, and the distance from one pixel to the next
    uint16_t* const first_pixel = out.at(b.image, b.y, b.x0 + (16 * i + r0) * b.x_step) + b.co0;
    const int64_t pixel_step = int64_t(b.x_step) * out.c;
    for (int j = 0; j < 16 * b.nt; j += 16) {
      const typename S::vf bias = S::load(wt.bias + b.co0 + j), slope = S::load(wt.alpha + b.co0 + j);
      uint16_t* at = first_pixel + j;
      for (int r = r0; r < r1; ++r, at += pixel_step) {
        const typename S::vf value = S::prelu(S::add(S::load(&sums[16 * i + r][j]), bias), slope);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(at), amx_bf16_bits(value));
      }
    }
  }
}

// A block's 2 x 2 accumulators (MT x NT of them): zeroed before its multiplies, stored after them to `out`, 32
// rows of 32 four-byte sums (fp32, or s32 for int8).
template <class Tiles, int MT, int NT>
inline void amx_zero_accumulators(Tiles& tiles) {
  tiles.template zero<0>();
  if constexpr (NT > 1) tiles.template zero<1>();
  if constexpr (MT > 1) tiles.template zero<2>();
  if constexpr (MT > 1 && NT > 1) tiles.template zero<3>();
}
template <class Tiles, int MT, int NT, class Sum>
inline void amx_store_accumulators(Tiles& tiles, Sum (*out)[32]) {
  static_assert(sizeof(Sum) == 4, "32 four-byte sums a row");
  tiles.template store<0>(&out[0][0], 128);
  if constexpr (NT > 1) tiles.template store<1>(&out[0][16], 128);
  if constexpr (MT > 1) tiles.template store<2>(&out[16][0], 128);
  if constexpr (MT > 1 && NT > 1) tiles.template store<3>(&out[16][16], 128);
}

// One K step of a block: A[i] from a (pixel i * 16 at a + i * 16 * pixel_values, rows pixel_values bf16 apart),
// B[j] from b + j * b_block (contiguous 1 KiB tiles), each A and B tile feeding two multiplies into C[i][j].
template <class Tiles, int MT, int NT>
inline void amx_bf16_step(Tiles& tiles, const uint16_t* a, int64_t pixel_values, const uint16_t* b, int64_t b_block) {
  const int64_t a_stride = pixel_values * 2, b_stride = 64;  // bytes between rows
  tiles.template load<6>(b, b_stride);
  tiles.template load<4>(a, a_stride);
  tiles.template dpbf16ps<0, 4, 6>();
  if constexpr (NT > 1) tiles.template load<7>(b + b_block, b_stride), tiles.template dpbf16ps<1, 4, 7>();
  if constexpr (MT > 1) {
    tiles.template load<5>(a + 16 * pixel_values, a_stride);
    tiles.template dpbf16ps<2, 5, 6>();
    if constexpr (NT > 1) tiles.template dpbf16ps<3, 5, 7>();
  }
}

// What the kernels run between their multiplies besides an epilogue part, where nothing else is to run.
struct AmxNothingBetween {
  void operator()() const {}
};

// Multiplies `block` from the bf16 rows y-1, y, y+1 (pixel x at rows[r] + (x + 1) * pixel_values, the conv's
// wt.cin input channels first), running the epilogue of the block before in nine parts, one after each tap's
// multiplies (see AmxDeferredEpilogue), each followed by between(); then stores this block's sums for the next
// call.
template <class Tiles, int MT, int NT, class Epilogue, class Between>
void amx_bf16_block(const PackedConv3x3& wt, Tiles& tiles, const uint16_t* const rows[3], int64_t pixel_values,
                    const AmxBf16Block& block, int kc, AmxBf16Epilogues& epilogues, const Epilogue& epilogue,
                    const Between& between) {
  const int64_t b_block = int64_t(9) * wt.cin * 16;  // bf16 values of 16 output channels' weights
  amx_zero_accumulators<Tiles, MT, NT>(tiles);
  for (int tap = 0; tap < 9; ++tap) {
    const uint16_t* a = rows[tap / 3] + int64_t(block.x0 + tap % 3) * pixel_values;
    const uint16_t* b = wt.w_bf16 + (block.co0 / 16) * b_block + int64_t(tap) * wt.cin * 16;
    for (int k0 = 0; k0 < wt.cin; k0 += kc, a += kc, b += kc * 16)
      amx_bf16_step<Tiles, MT, NT>(tiles, a, pixel_values, b, b_block);
    epilogues.part(epilogue, tap, 9);
    between();
  }
  amx_store_accumulators<Tiles, MT, NT>(tiles, epilogues.next(block));
}

// The tiles' configuration for a block's pixel counts and the bytes of an A tile's row, reloaded only when they
// change (the int8 dense block shares it, with 64 codes a row).
struct AmxBf16Configured {
  int m0 = -1, m1 = -1, a_bytes = -1;
  template <class Tiles>
  void ensure(Tiles& tiles, const AmxBf16Block& block, int a_bytes_) {
    if (block.m[0] == m0 && block.m[1] == m1 && a_bytes_ == a_bytes) return;
    tiles.configure(amx_bf16_config(block.m[0], block.m[1], a_bytes_));
    m0 = block.m[0], m1 = block.m[1], a_bytes = a_bytes_;
  }
};

// The blocks of one output row y of w pixels and cout channels: channels in blocks of 32 (outside, so that one
// slice of the weights serves the whole row), pixels in blocks of 32. For each, the tiles are configured for its
// pixel counts and A rows of a_bytes, then multiply(block, MT, NT) runs with MT and NT as integral constants.
template <class Tiles, class Multiply>
void amx_blocks_of_row(Tiles& tiles, AmxBf16Configured& configured, int a_bytes, int cout, int image, int y,
                       int w, const Multiply& multiply) {
  using one = std::integral_constant<int, 1>;
  using two = std::integral_constant<int, 2>;
  for (int co0 = 0; co0 < cout; co0 += 32) {
    const int nt = cout - co0 >= 32 ? 2 : 1;
    for (int x0 = 0; x0 < w; x0 += 32) {
      AmxBf16Block block;
      block.image = image, block.y = y, block.x0 = x0, block.co0 = co0, block.nt = nt;
      block.m[0] = std::min(16, w - x0), block.m[1] = std::clamp(w - x0 - 16, 0, 16);
      block.mt = block.m[1] > 0 ? 2 : 1;
      configured.ensure(tiles, block, a_bytes);
      if (block.mt == 2 && nt == 2) multiply(block, two{}, two{});
      else if (block.mt == 2) multiply(block, two{}, one{});
      else if (nt == 2) multiply(block, one{}, two{});
      else multiply(block, one{}, one{});
    }
  }
}

// One output row y of a conv from its bf16 rows (between(): as amx_bf16_block's).
template <class Tiles, class Epilogue, class Between = AmxNothingBetween>
void amx_bf16_conv_row(const PackedConv3x3& wt, Tiles& tiles, AmxBf16Configured& configured,
                       const uint16_t* const rows[3], int64_t pixel_values, int image, int y, int w,
                       AmxBf16Epilogues& epilogues, const Epilogue& epilogue, const Between& between = {}) {
  const int kc = wt.cin % 32 == 0 ? 32 : 16;
  amx_blocks_of_row(tiles, configured, 2 * kc, wt.cout, image, y, w, [&](const AmxBf16Block& block, auto mt, auto nt) {
    amx_bf16_block<Tiles, decltype(mt)::value, decltype(nt)::value>(wt, tiles, rows, pixel_values, block, kc,
                                                                     epilogues, epilogue, between);
  });
}

// A conv's block epilogue: bias and PReLU into its bf16 map where it writes one, else conv_epilogue.h's.
template <class S>
auto amx_bf16_conv_epilogue(const Conv3x3Params& p) {
  const bool to_bf16 = p.out_bf16.data && p.epilogue == Epilogue::bias_prelu;
  return [&p, to_bf16](const AmxBf16Block& b, float (*sums)[32], int first, int end) {
    if (to_bf16) amx_bf16_prelu_to_bf16<S>(*p.weights, p.out_bf16, b, sums, first, end);
    else amx_bf16_epilogue<S>(p, b, sums, first, end);
  };
}

// What a thread of a bf16 tile conv holds: its tiles and their configuration, its ring of input rows rounded to
// bf16 (of ring_values values each; none where the input is read in place) and its deferred epilogue.
template <class Tiles>
struct AmxBf16ConvThread {
  explicit AmxBf16ConvThread(int64_t ring_values) : converted(ring_values) {}
  Tiles tiles;
  AmxBf16Configured configured;
  AmxRowRing<3> converted;
  AmxBf16Epilogues epilogues;
};

// The output rows of a bf16 tile conv, n images of h rows: row(thread, image, y) for each, in static chunks of
// consecutive rows, so that each input row is converted about once per thread; then the last block's epilogue.
template <class Tiles, class Epilogue, class Row>
void amx_bf16_conv_rows(int n, int h, int64_t ring_values, const Epilogue& epilogue, const ExecContext& ctx,
                        const Row& row) {
  const int64_t rows_total = int64_t(n) * h;
#pragma omp parallel num_threads(ctx.threads)
  {
    AmxBf16ConvThread<Tiles> thread(ring_values);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows_total; ++r) row(thread, int(r / h), int(r % h));
    thread.epilogues.flush(epilogue);
    thread.tiles.release();
  }
}

// A bf16 input map at the conv's resolution is read in place (its halo holds the padding's zeros); a float32
// one, or one read upsampled, goes through the ring. A bf16 output (bias_prelu) takes amx_bf16_prelu_to_bf16.
template <class S, class Tiles>
void conv3x3_bf16_tiles(const Conv3x3Params& p, const ExecContext& ctx) {
  const PackedConv3x3& wt = *p.weights;
  const int h = p.in.h * p.upsample, w = p.in.w * p.upsample;
  const bool in_place = p.in_bf16.data && p.upsample == 1;
  const int64_t pixel_values = in_place ? p.in_bf16.c : wt.cin;
  const auto epilogue = amx_bf16_conv_epilogue<S>(p);
  amx_bf16_conv_rows<Tiles>(p.in.n, h, in_place ? 0 : int64_t(w + 2) * wt.cin, epilogue, ctx,
                            [&](AmxBf16ConvThread<Tiles>& t, int image, int y) {
    const uint16_t* rows[3];
    for (int r = 0; r < 3; ++r) rows[r] = amx_bf16_input_row(p, in_place, t.converted, image, y - 1 + r, w, wt.cin);
    amx_bf16_conv_row(wt, t.tiles, t.configured, rows, pixel_values, image, y, w, t.epilogues, epilogue);
  });
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
