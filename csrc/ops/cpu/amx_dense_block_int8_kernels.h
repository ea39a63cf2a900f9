// ESRGAN's residual dense block (DenseBlockParams) on AMX int8 tiles: the wavefront of
// dense_block_wavefront.h over a ring of u8 codes, with the ring and epilogue of dense_block_int8_kernels.h
// (which the VNNI block shares). Each part of the concatenation keeps its own codes (the
// block input's, each conv's output's: DenseBlockParams::codes), whose scales the weights fold in and whose zero
// points the bias absorbs (pack_dense_conv_int8), so that no part is requantized to a shared range.
// TDPBUSD (u8 x s8 into s32) multiplies 64 input channels at once, twice the channels of TDPBF16PS in the same
// time: a conv whose input channels are not a multiple of 64 reads the next channels of the ring row too (the
// ring's pixels are padded to a multiple of 64) against zero weights, which adds exactly nothing.
//
// Blocks as the bf16 kernel's: 2 x 2 accumulator tiles of 16 x 16 s32 sums (32 pixels x 32 output channels),
// A tiles of 16 pixels x 64 codes, B tiles of 16 quads of input channels x 16 output channels read from the
// [tap][cin/4][cout][4] weights with the stride of a quad. The epilogue starts with one multiply-add from the raw
// sums (the zero points' compensation and the output's code scale, or the residual's, are in scale and bias):
// then LeakyReLU and the conv's own codes into the ring, or the last conv's residuals into the block's output.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ops/cpu/amx_dense_block_kernels.h"
#include "ops/cpu/dense_block_int8_kernels.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

using AmxInt8DenseEpilogues = AmxDeferredEpilogue<AmxBf16Block, int32_t[32][32]>;

// The waiting epilogue runs in three parts, after the first tap of each kernel row: in nine (one after each tap,
// as the bf16 kernels run theirs) the int8 blocks took 109.2-120.1 ms against 107.5-115.7 for three, 7
// alternating rounds on a 2-core Xeon with AMX (two parts: 106.5-114.0; one: 117.3-119.2).
constexpr int kAmxInt8EpilogueParts = 3, kAmxInt8TapsPerPart = 9 / kAmxInt8EpilogueParts;

// Multiplies `block` (as AmxBf16Block says) from the code rows y-1, y, y+1, running the epilogue of the block
// before in kAmxInt8EpilogueParts parts between the taps, each followed by between(), and stores this block's
// sums for the next call.
template <class Tiles, int MT, int NT, class Epilogue, class Between>
void amx_int8_dense_block(const PackedConv3x3Int8& wt, Tiles& tiles, const uint8_t* const rows[3],
                          int64_t pixel_codes, const AmxBf16Block& block, AmxInt8DenseEpilogues& epilogues,
                          const Epilogue& epilogue, const Between& between) {
  const int64_t b_stride = int64_t(wt.cout) * 4;  // bytes from one quad of input channels to the next
  amx_zero_accumulators<Tiles, MT, NT>(tiles);
  for (int tap = 0; tap < 9; ++tap) {
    const uint8_t* a = rows[tap / 3] + int64_t(block.x0 + tap % 3) * pixel_codes;
    const int8_t* b = wt.w + (int64_t(tap) * (wt.cin / 4) * wt.cout + block.co0) * 4;
    for (int k0 = 0; k0 < wt.cin; k0 += 64, a += 64, b += 16 * b_stride) {
      tiles.template load<6>(b, b_stride);
      tiles.template load<4>(a, pixel_codes);
      tiles.template dpbusd<0, 4, 6>();
      if constexpr (NT > 1) tiles.template load<7>(b + 64, b_stride), tiles.template dpbusd<1, 4, 7>();
      if constexpr (MT > 1) {
        tiles.template load<5>(a + 16 * pixel_codes, pixel_codes);
        tiles.template dpbusd<2, 5, 6>();
        if constexpr (NT > 1) tiles.template dpbusd<3, 5, 7>();
      }
    }
    if (tap % kAmxInt8TapsPerPart == 0) {
      epilogues.part(epilogue, tap / kAmxInt8TapsPerPart, kAmxInt8EpilogueParts);
      between();
    }
  }
  amx_store_accumulators<Tiles, MT, NT>(tiles, epilogues.next(block));
}

template <class S, class Tiles>
class DenseBlockInt8Worker : public DenseBlockWorkerBase<Tiles, AmxInt8DenseEpilogues> {
  using Base = DenseBlockWorkerBase<Tiles, AmxInt8DenseEpilogues>;
  using Base::p_, Base::pixel_values_, Base::tiles_, Base::configured_, Base::epilogues_;
  using Ring = DenseBlockInt8Ring<S>;

 public:
  using Value = uint8_t;
  DenseBlockInt8Worker(const DenseBlockParams& p, int64_t pixel_codes)
      : Base(p, pixel_codes), ring_(p, pixel_codes), entries_(p, kAmxInt8EpilogueParts) {}
  void pad(uint8_t* pixel) const { ring_.pad(pixel); }

  // The block input's rows enter after the epilogue parts (DenseBlockEntries), spread over the step's blocks.
  void enter(int image, int y, int x_begin, int x_end, uint8_t* to) {
    entries_.queue(image, y, x_begin, x_end, to);
  }
  void entered() { entries_.run(ring_enter(), pixel_values_, true); }
  void finish() {
    entered();
    Base::finish();
  }

  void conv(int k, int image, int y, int x0, int x1, const uint8_t* const rows[3], uint8_t* own) {
    const PackedConv3x3Int8& wt = *p_.weights_int8[k];
    if (k + 1 < p_.count) {
      uint8_t* out = own + p_.channels + k * p_.growth;  // after the channels the conv reads
      const int zero_point = p_.codes[k + 1].zero_point;
      row(wt, image, y, x1 - x0, rows, [&](const AmxBf16Block& b, int32_t (*sums)[32], int first, int end) {
        codes_epilogue(wt, zero_point, out, b, sums, first, end);
      });
    } else {
      row(wt, image, y, x1 - x0, rows, [&](const AmxBf16Block& b, int32_t (*sums)[32], int first, int end) {
        residual_epilogue(wt, x0, b, sums, first, end);
      });
    }
  }

 private:
  // A conv's codes of the block's sums rows [first, end) into the ring at out[pixel * pixel_values + channel]
  // (their values in code steps: the output's code scale is in the scale and bias).
  // What the loop reads is held in locals: a u8 store may alias any object, so members and the block would be
  // loaded again after each store.
  void codes_epilogue(const PackedConv3x3Int8& wt, int zero_point, uint8_t* out, const AmxBf16Block& b,
                      int32_t (*sums)[32], int first, int end) const {
    const typename S::vi zero = S::set1_i(zero_point);
    const int64_t pixel_values = pixel_values_;
    const int channels = 16 * b.nt, mt = b.mt;
    int r0[2] = {0, 0}, r1[2] = {0, 0};
    for (int i = 0; i < mt; ++i) amx_block_rows(b, i, first, end, r0[i], r1[i]);
    uint8_t* const block_out = out + int64_t(b.x0) * pixel_values + b.co0;
    const float *scales = wt.scale + b.co0, *biases = wt.bias + b.co0, *slopes = wt.alpha + b.co0;
    for (int j = 0; j < channels; j += S::W) {
      const typename S::vf scale = S::load(scales + j), bias = S::load(biases + j), slope = S::load(slopes + j);
      for (int i = 0; i < mt; ++i)
        for (int r = r0[i]; r < r1[i]; ++r)
          S::store_unit_codes(block_out + int64_t(16 * i + r) * pixel_values + j,
                              Ring::inner_value(S::int_to_float(S::load_i(&sums[16 * i + r][j])), scale, bias, slope),
                              zero);
    }
  }

  // The last conv's residuals of the block's sums rows [first, end) into the block's float32 output, pixel by
  // pixel (DenseBlockInt8Ring::residual_value), the factors held in registers for the block's channels (at most
  // two vectors of each): a float store may alias them.
  void residual_epilogue(const PackedConv3x3Int8& wt, int x0, const AmxBf16Block& b, int32_t (*sums)[32],
                         int first, int end) const {
    constexpr int kMaxVectors = 32 / S::W;
    const int vectors = 16 * b.nt / S::W;
    typename S::vf scale[kMaxVectors], bias[kMaxVectors];
    for (int v = 0; v < vectors; ++v)
      scale[v] = S::load(wt.scale + b.co0 + v * S::W), bias[v] = S::load(wt.bias + b.co0 + v * S::W);
    const typename S::vf outer_scale = S::set1(p_.outer_scale);
    dense_block_residual_pixels(p_, x0, b, sums, first, end,
                                [&](const int32_t* row, const float* in, const float* outer_skip, float* out) {
      for (int v = 0; v < vectors; ++v) {
        const int j = v * S::W;
        S::store(out + j, Ring::residual_value(S::int_to_float(S::load_i(row + j)), scale[v], bias[v], in + j,
                                               outer_scale, outer_skip ? outer_skip + j : nullptr));
      }
    });
  }

  // One output row of w pixels, from the code rows.
  template <class Epilogue>
  void row(const PackedConv3x3Int8& wt, int image, int y, int w, const uint8_t* const rows[3],
           const Epilogue& epilogue) {
    // A rows of 64 codes
    amx_blocks_of_row(tiles_, configured_, 64, wt.cout, image, y, w, [&](const AmxBf16Block& block, auto mt, auto nt) {
      amx_int8_dense_block<Tiles, decltype(mt)::value, decltype(nt)::value>(
          wt, tiles_, rows, pixel_values_, block, epilogues_, epilogue,
          [this] { entries_.run(ring_enter(), pixel_values_); });
    });
    epilogues_.flush(epilogue);  // the next conv may read this row
  }

  auto ring_enter() const {
    return [this](int image, int y, int x_begin, int x_end, uint8_t* to) { ring_.enter(image, y, x_begin, x_end, to); };
  }

  Ring ring_;
  DenseBlockEntries<uint8_t> entries_;
};

template <class S, class Tiles>
void dense_block_int8_tiles(const DenseBlockParams& p, const ExecContext& ctx) {
  const int pixel_codes = dense_block_int8_pixel_codes(p);
  dense_block_wavefront(p, pixel_codes, ctx, [&] { return DenseBlockInt8Worker<S, Tiles>(p, pixel_codes); });
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
