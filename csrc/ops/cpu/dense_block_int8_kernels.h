// ESRGAN's residual dense block (DenseBlockParams) on u8 codes, as one op: the wavefront of
// dense_block_wavefront.h over a ring of codes. Each part of the concatenation keeps its own codes (the block
// input's, each conv's output's: DenseBlockParams::codes), whose scales the weights fold in and whose zero points
// the bias absorbs (pack_dense_conv_int8), so that no part is requantized to a shared range. The ring's pixels
// are padded to a multiple of 64 codes (AMX's TDPBUSD reads 64 at once; its padding meets zero weights).
//
// What both int8 blocks share is here: the ring's padding and entry, and the epilogue from an exact s32 sum (one
// multiply-add: the zero points' compensation and the output's code scale, or the residual's, are in the scale
// and bias), so the AMX tiles (amx_dense_block_int8_kernels.h) and VNNI (below) give the same bits. With
// VNNI a conv runs as the direct kernel of int8_kernels.h does, on registers: VPDPBUSD sums four input channels
// per lane, a block of pixels times the conv's 32 or 64 output channels held in accumulators.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ops/cpu/conv_epilogue.h"
#include "ops/cpu/dense_block_wavefront.h"
#include "ops/cpu/int8_epilogue.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// Codes per ring pixel: the concatenation's channels, padded so that each conv's 64-channel chunks stay in it.
inline int dense_block_int8_pixel_codes(const DenseBlockParams& p) {
  return (p.channels + (p.count - 1) * p.growth + 63) / 64 * 64;
}

inline bool dense_block_int8_fits(const DenseBlockParams& p) {
  if (p.count < 2 || p.count > kMaxDenseConvs || p.channels % 16 != 0 || p.growth % 16 != 0) return false;
  for (int k = 0; k < p.count; ++k) {
    const PackedConv3x3Int8* wt = p.weights_int8[k];
    const int cin = p.channels + k * p.growth, cout = k + 1 < p.count ? p.growth : p.channels;
    if (!wt || wt->cin != (cin + 63) / 64 * 64 || wt->cout != cout || p.codes[k].code_max != 255) return false;
    if (k + 1 < p.count && !wt->alpha) return false;
  }
  return true;
}

// The ring's values and epilogues for one block, whatever does the multiplies.
template <class S>
class DenseBlockInt8Ring {
 public:
  using Value = uint8_t;
  using vf = typename S::vf;
  using vi = typename S::vi;
  DenseBlockInt8Ring(const DenseBlockParams& p, int64_t pixel_codes) : p_(p), pixel_values_(pixel_codes) {}

  // Each part's code of real zero (its zero point); the pixel's padding channels are read against zero weights
  // only, so they may hold anything.
  void pad(uint8_t* pixel) const {
    std::memset(pixel, p_.codes[0].zero_point, size_t(p_.channels));
    for (int k = 0; k + 1 < p_.count; ++k)
      std::memset(pixel + p_.channels + k * p_.growth, p_.codes[k + 1].zero_point, size_t(p_.growth));
  }

  // The block input's row y, pixels [x_begin, x_end), as its codes into the ring at `to`. Everything the loop
  // reads is a local: a u8 store may alias any object, and members read through p_ would be loaded again after
  // each (this loop ran at about 7 cycles a vector so, on a Xeon with AMX).
  void enter(int image, int y, int x_begin, int x_end, uint8_t* to) const {
    const vf inv_scale = S::set1(p_.codes[0].inv_scale);
    const vi zero_point = S::set1_i(p_.codes[0].zero_point);
    const int channels = p_.channels, in_pixel = p_.in.c;
    const int64_t pixel_values = pixel_values_;
    const float* from = p_.in.at(image, y, x_begin);
    for (int x = x_begin; x < x_end; ++x, to += pixel_values, from += in_pixel)
      for (int c = 0; c < channels; c += S::W) S::store_codes(to + c, S::load(from + c), inv_scale, zero_point);
  }

  // An inner conv's value in its code steps, LeakyReLU(sum * scale + bias) (the output's code scale is folded
  // into the scale and bias), and its codes at `to`: that rounded, plus the zero point, clamped.
  static vf inner_value(vf sum, vf scale, vf bias, vf slope) { return S::prelu(S::fma(sum, scale, bias), slope); }
  static void store_inner(uint8_t* to, vf sum, vf scale, vf bias, vf slope, const QuantCodes& step_one) {
    store_codes_of<S>(to, inner_value(sum, scale, bias, slope), step_one);
  }
  // The last conv's value: sum * scale + bias (the residual's scale folded in) + the block input `in`, then where
  // there is one the outer residual: conv_epilogue.h's residual_value with a scale of 1 (an exact product).
  static vf residual_value(vf sum, vf scale, vf bias, const float* in, vf outer_scale, const float* outer_skip) {
    return cpu::SRGAN_FAST_ISA::residual_value<S>(S::fma(sum, scale, bias), S::set1(1.f), in, outer_scale,
                                                  outer_skip);
  }
  // The last conv's channels co.. of pixel (y, x) into the block's output.
  void store_residual(int image, int y, int x, int co, vf sum, vf scale, vf bias) const {
    const float* outer_skip = p_.outer_skip.data ? p_.outer_skip.at(image, y, x) + co : nullptr;
    S::store(p_.out.at(image, y, x) + co,
             residual_value(sum, scale, bias, p_.in.at(image, y, x) + co, S::set1(p_.outer_scale), outer_skip));
  }
  static QuantCodes step_one(int zero_point) {
    QuantCodes codes;
    codes.zero_point = zero_point;
    return codes;
  }

 protected:
  const DenseBlockParams& p_;
  int64_t pixel_values_;
};

// The block on VPDPBUSD: per output row, blocks of MR pixels times all NV * W output channels of the conv.
template <class S>
class DenseBlockInt8VnniWorker : public DenseBlockInt8Ring<S> {
  using Base = DenseBlockInt8Ring<S>;
  using Base::p_, Base::pixel_values_;
  using vf = typename S::vf;
  using vi = typename S::vi;

 public:
  DenseBlockInt8VnniWorker(const DenseBlockParams& p, int64_t pixel_codes) : Base(p, pixel_codes) {}
  void entered() {}  // rows enter at once
  void finish() {}

  void conv(int k, int image, int y, int x0, int x1, const uint8_t* const rows[3], uint8_t* own) {
    const PackedConv3x3Int8& wt = *p_.weights_int8[k];
    const int cin = p_.channels + k * p_.growth;  // the weights past it (to wt.cin) are zeros
    const int w = x1 - x0;
    for (int co0 = 0; co0 < wt.cout; co0 += 4 * S::W) {  // chunks of up to 4 vectors of output channels
      const Row row{wt, k, image, y, x0, cin, co0, rows, own + p_.channels + k * p_.growth};
      switch (std::min(4, (wt.cout - co0) / S::W)) {
        case 4: pixels<6, 4>(row, 0, w); break;  // MR x NV accumulators + NV weights + a broadcast: <= 32
        case 3: pixels<8, 3>(row, 0, w); break;
        case 2: pixels<12, 2>(row, 0, w); break;
        default: pixels<12, 1>(row, 0, w);
      }
    }
  }

 private:
  struct Row {
    const PackedConv3x3Int8& wt;
    int k, image, y, x0, cin, co0;
    const uint8_t* const* rows;  // pixel x0 + x at rows[r] + (x + 1) * pixel_values
    uint8_t* codes_out;          // inner convs: pixel x0's first output code in the ring
  };

  // Pixels [x, x + count) of the row in blocks of MR, the rest in smaller blocks (never reading past the ring).
  template <int MR, int NV>
  void pixels(const Row& row, int x, int count) {
    for (; count >= MR; x += MR, count -= MR) block<MR, NV>(row, x);
    if constexpr (MR > 1) {
      if (count > 0) pixels<MR / 2, NV>(row, x, count);
    }
  }

  template <int MR, int NV>
  void block(const Row& row, int x) {
    const PackedConv3x3Int8& wt = row.wt;
    const int groups = row.cin / 4;
    vi acc[MR][NV];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) acc[i][j] = S::zero_i();
    for (int tap = 0; tap < 9; ++tap) {
      const uint8_t* src = row.rows[tap / 3] + int64_t(x + tap % 3) * pixel_values_;
      const int8_t* w = wt.w + int64_t(tap) * (wt.cin / 4) * wt.cout * 4;
      for (int g = 0; g < groups; ++g) {
        vi wv[NV];
        for (int j = 0; j < NV; ++j) wv[j] = S::load_i(w + (int64_t(g) * wt.cout + row.co0 + j * S::W) * 4);
        for (int i = 0; i < MR; ++i) {
          const vi a = S::set1_four(src + int64_t(i) * pixel_values_ + 4 * g);
          for (int j = 0; j < NV; ++j) acc[i][j] = S::dot_u8s8(acc[i][j], a, wv[j]);
        }
      }
    }
    const bool inner = row.k + 1 < p_.count;
    const QuantCodes codes = Base::step_one(inner ? p_.codes[row.k + 1].zero_point : 0);
    for (int j = 0; j < NV; ++j) {
      const int co = row.co0 + j * S::W;
      const vf scale = S::load(wt.scale + co), bias = S::load(wt.bias + co);
      if (inner) {
        const vf slope = S::load(wt.alpha + co);
        for (int i = 0; i < MR; ++i)
          Base::store_inner(row.codes_out + int64_t(x + i) * pixel_values_ + co, S::int_to_float(acc[i][j]), scale,
                            bias, slope, codes);
      } else {
        for (int i = 0; i < MR; ++i)
          Base::store_residual(row.image, row.y, row.x0 + x + i, co, S::int_to_float(acc[i][j]), scale, bias);
      }
    }
  }
};

template <class S>
void dense_block_int8_vnni(const DenseBlockParams& p, const ExecContext& ctx) {
  const int pixel_codes = dense_block_int8_pixel_codes(p);
  dense_block_wavefront(p, pixel_codes, ctx, [&] { return DenseBlockInt8VnniWorker<S>(p, pixel_codes); });
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
