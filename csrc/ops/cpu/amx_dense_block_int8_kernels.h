// ESRGAN's residual dense block (DenseBlockParams) on AMX int8 tiles: the wavefront of
// amx_dense_block_kernels.h over a ring of u8 codes. Each part of the concatenation keeps its own codes (the
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
#include "ops/cpu/int8_epilogue.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// Codes per ring pixel: the concatenation's channels, padded so that each conv's 64-channel chunks stay in it.
inline int dense_block_int8_pixel_codes(const DenseBlockParams& p) {
  return (p.channels + (p.count - 1) * p.growth + 63) / 64 * 64;
}

inline bool amx_dense_block_int8_fits(const DenseBlockParams& p) {
  if (p.count < 2 || p.count > kMaxDenseConvs || p.channels % 16 != 0 || p.growth % 16 != 0) return false;
  for (int k = 0; k < p.count; ++k) {
    const PackedConv3x3Int8* wt = p.weights_int8[k];
    const int cin = p.channels + k * p.growth, cout = k + 1 < p.count ? p.growth : p.channels;
    if (!wt || wt->cin != (cin + 63) / 64 * 64 || wt->cout != cout || p.codes[k].code_max != 255) return false;
    if (k + 1 < p.count && !wt->alpha) return false;
  }
  return true;
}

using AmxInt8DenseEpilogues = AmxDeferredEpilogue<AmxBf16Block, int32_t[32][32]>;

// Multiplies `block` (as AmxBf16Block says) from the code rows y-1, y, y+1, then runs epilogue(block before,
// its sums) while the tiles work, and stores this block's sums for the next call.
template <class Tiles, int MT, int NT, class Epilogue>
void amx_int8_dense_block(const PackedConv3x3Int8& wt, Tiles& tiles, const uint8_t* const rows[3],
                          int64_t pixel_codes, const AmxBf16Block& block, AmxInt8DenseEpilogues& epilogues,
                          const Epilogue& epilogue) {
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
  }
  amx_store_accumulators<Tiles, MT, NT>(tiles, epilogues.after(block, epilogue));
}

template <class S, class Tiles>
class DenseBlockInt8Worker : public DenseBlockWorkerBase<Tiles, AmxInt8DenseEpilogues> {
  using Base = DenseBlockWorkerBase<Tiles, AmxInt8DenseEpilogues>;
  using Base::p_, Base::pixel_values_, Base::tiles_, Base::configured_, Base::epilogues_;

 public:
  using Value = uint8_t;
  DenseBlockInt8Worker(const DenseBlockParams& p, int64_t pixel_codes) : Base(p, pixel_codes) {}

  // Each part's code of real zero (its zero point); the pixel's padding channels are read against zero weights
  // only, so they may hold anything.
  void pad(uint8_t* pixel) const {
    std::memset(pixel, p_.codes[0].zero_point, size_t(p_.channels));
    for (int k = 0; k + 1 < p_.count; ++k)
      std::memset(pixel + p_.channels + k * p_.growth, p_.codes[k + 1].zero_point, size_t(p_.growth));
  }

  void enter(int image, int y, int x_begin, int x_end, uint8_t* to) {
    const QuantCodes codes = p_.codes[0];  // a local: the stores cannot alias it, so its broadcasts are hoisted
    for (int x = x_begin; x < x_end; ++x, to += pixel_values_)
      for (int c = 0; c < p_.channels; c += S::W)
        store_codes_of<S>(to + c, S::load(p_.in.at(image, y, x) + c), codes);
  }

  void conv(int k, int image, int y, int x0, int x1, const uint8_t* const rows[3], uint8_t* own) {
    const PackedConv3x3Int8& wt = *p_.weights_int8[k];
    if (k + 1 < p_.count) {
      uint8_t* out = own + p_.channels + k * p_.growth;  // after the channels the conv reads
      const int zero_point = p_.codes[k + 1].zero_point;
      row(wt, image, y, x1 - x0, rows, [&](const AmxBf16Block& b, int32_t (*sums)[32]) {
        codes_epilogue(wt, zero_point, out, b, sums);
      });
    } else {
      row(wt, image, y, x1 - x0, rows, [&](const AmxBf16Block& b, int32_t (*sums)[32]) {
        residual_epilogue(wt, x0, b, sums);
      });
    }
  }

 private:
  // A conv's codes: round(LeakyReLU(sum * scale + bias)) + zero point, clamped, at out[pixel * pixel_values + channel].
  void codes_epilogue(const PackedConv3x3Int8& wt, int zero_point, uint8_t* out, const AmxBf16Block& b,
                      int32_t (*sums)[32]) const {
    QuantCodes codes;  // a code step of 1: the output's code scale is folded into wt.scale and wt.bias
    codes.zero_point = zero_point;
    for (int j = 0; j < 16 * b.nt; j += S::W) {
      const int co = b.co0 + j;
      const typename S::vf scale = S::load(wt.scale + co), bias = S::load(wt.bias + co), slope = S::load(wt.alpha + co);
      for (int i = 0; i < b.mt; ++i)
        for (int r = 0; r < b.m[i]; ++r) {
          const typename S::vf sum = S::int_to_float(S::load_i(&sums[16 * i + r][j]));
          store_codes_of<S>(out + int64_t(b.x0 + 16 * i + r) * pixel_values_ + co,
                            S::prelu(S::fma(sum, scale, bias), slope), codes);
        }
    }
  }

  // The last conv: sum * scale + bias (the residual's scale folded in) + the block input, then where there is
  // one the outer residual, outer_scale * that + outer_skip, into the block's float32 output.
  void residual_epilogue(const PackedConv3x3Int8& wt, int x0, const AmxBf16Block& b, int32_t (*sums)[32]) const {
    const bool outer = p_.outer_skip.data != nullptr;
    const typename S::vf outer_scale = S::set1(p_.outer_scale);
    for (int j = 0; j < 16 * b.nt; j += S::W) {
      const int co = b.co0 + j;
      const typename S::vf scale = S::load(wt.scale + co), bias = S::load(wt.bias + co);
      for (int i = 0; i < b.mt; ++i)
        for (int r = 0; r < b.m[i]; ++r) {
          const int x = x0 + b.x0 + 16 * i + r;
          typename S::vf value = S::fma(S::int_to_float(S::load_i(&sums[16 * i + r][j])), scale, bias);
          value = S::add(value, S::load(p_.in.at(b.image, b.y, x) + co));
          if (outer) value = S::fma(value, outer_scale, S::load(p_.outer_skip.at(b.image, b.y, x) + co));
          S::store(p_.out.at(b.image, b.y, x) + co, value);
        }
    }
  }

  // One output row of w pixels, from the code rows.
  template <class Epilogue>
  void row(const PackedConv3x3Int8& wt, int image, int y, int w, const uint8_t* const rows[3],
           const Epilogue& epilogue) {
    // A rows of 64 codes
    amx_blocks_of_row(tiles_, configured_, 64, wt.cout, image, y, w, [&](const AmxBf16Block& block, auto mt, auto nt) {
      amx_int8_dense_block<Tiles, decltype(mt)::value, decltype(nt)::value>(wt, tiles_, rows, pixel_values_, block,
                                                                            epilogues_, epilogue);
    });
    epilogues_.flush(epilogue);  // the next conv may read this row
  }
};

template <class S, class Tiles>
void dense_block_int8_tiles(const DenseBlockParams& p, const ExecContext& ctx) {
  const int pixel_codes = dense_block_int8_pixel_codes(p);
  dense_block_wavefront(p, pixel_codes, ctx, [&] { return DenseBlockInt8Worker<S, Tiles>(p, pixel_codes); });
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
