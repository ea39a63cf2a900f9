// ESRGAN's residual dense block (DenseBlockParams) on AMX bf16 tiles, as one op that keeps the concatenation
// in cache. Run conv by conv, each conv streams the whole concatenation (192 fp32 channels at 128², 12 MiB)
// through memory and rounds it to bf16 again, which cost RRDBNet about half its time on a 2-core Xeon with AMX.
// Here the work is split into bands of rows and strips of columns, and a thread walks down its band as a
// wavefront: at step s conv k computes row s - k, so that every row a conv reads was written earlier in the
// step or before it. The concatenation lives in a ring of count + 2 bf16 rows per thread ([x | conv 0 | ... |
// conv count-2] for the strip's columns and `count` more each side; rows and columns outside the image all
// zero), from which each conv's A tiles load directly: no copy, no rounding past the block input's. Conv k
// recomputes count - 1 - k rows (columns) on each side where its band (strip) borders another one.
//
// The bits equal conv3x3_bf16_tiles run conv by conv: the same blocks, the same tile multiplies in the same
// order, and each conv's output rounded to bf16 as the next conv's row rounding does (amx_bf16_bits).
#pragma once

#include <algorithm>
#include <cstring>

#include "ops/cpu/amx_bf16_kernels.h"
#include "ops/cpu/dense_block_wavefront.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

inline bool amx_dense_block_fits(const DenseBlockParams& p) {
  if (p.count < 2 || p.count > kMaxDenseConvs || p.channels % 16 != 0 || p.growth % 16 != 0) return false;
  for (int k = 0; k < p.count; ++k) {
    const PackedConv3x3* wt = p.weights[k];
    const int cout = k + 1 < p.count ? p.growth : p.channels;
    if (!wt || !amx_bf16_fits(*wt) || wt->cin != p.channels + k * p.growth || wt->cout != cout) return false;
    if (k + 1 < p.count && !wt->alpha) return false;
  }
  return true;
}

// The pixels of the last conv's block sums rows [first, end), x0 the column of the block's pixel 0: for each,
// residual(sums row, in, outer_skip, out) with the pixel's channels co0.. of the block input, the outer skip
// (null where there is none) and the block output, its addresses found once for its channels.
template <class Sum, class Residual>
void dense_block_residual_pixels(const DenseBlockParams& p, int x0, const AmxBf16Block& b, Sum (*sums)[32],
                                 int first, int end, const Residual& residual) {
  for (int i = 0; i < b.mt; ++i) {
    int r0, r1;
    amx_block_rows(b, i, first, end, r0, r1);
    for (int r = r0; r < r1; ++r) {
      const int x = x0 + b.x0 + 16 * i + r;
      const float* outer_skip = p.outer_skip.data ? p.outer_skip.at(b.image, b.y, x) + b.co0 : nullptr;
      residual(sums[16 * i + r], p.in.at(b.image, b.y, x) + b.co0, outer_skip, p.out.at(b.image, b.y, x) + b.co0);
    }
  }
}

// The last conv's epilogue at bf16: store_conv_outputs' bias_add_skip, pixel by pixel.
template <class S>
void dense_block_bf16_residual(const DenseBlockParams& p, const PackedConv3x3& wt, int x0, const AmxBf16Block& b,
                               float (*sums)[32], int first, int end) {
  const typename S::vf scale = S::set1(p.skip_scale), outer_scale = S::set1(p.outer_scale);
  dense_block_residual_pixels(p, x0, b, sums, first, end,
                              [&](const float* row, const float* in, const float* outer_skip, float* out) {
    for (int j = 0; j < 16 * b.nt; j += S::W) {
      const typename S::vf conv = S::add(S::load(row + j), S::load(wt.bias + b.co0 + j));
      S::store(out + j, residual_value<S>(conv, scale, in + j, outer_scale, outer_skip ? outer_skip + j : nullptr));
    }
  });
}

// What a thread's worker holds besides its arithmetic: the block, the ring's values a pixel, its tiles
// (configured per block shape, released by finish()) and the deferred epilogue's sums.
template <class Tiles, class Epilogues>
class DenseBlockWorkerBase {
 public:
  void finish() { tiles_.release(); }

 protected:
  DenseBlockWorkerBase(const DenseBlockParams& p, int64_t pixel_values) : p_(p), pixel_values_(pixel_values) {}
  const DenseBlockParams& p_;
  int64_t pixel_values_;
  Tiles tiles_;
  AmxBf16Configured configured_;
  Epilogues epilogues_;
};

// bf16: the concatenation in bf16 rows, each conv's output rounded as amx_bf16_row would round it.
template <class S, class Tiles>
class DenseBlockBf16Worker : public DenseBlockWorkerBase<Tiles, AmxBf16Epilogues> {
  using Base = DenseBlockWorkerBase<Tiles, AmxBf16Epilogues>;
  using Base::p_, Base::pixel_values_, Base::tiles_, Base::configured_, Base::epilogues_;

 public:
  using Value = uint16_t;
  DenseBlockBf16Worker(const DenseBlockParams& p, int64_t pixel_values) : Base(p, pixel_values), entries_(p, 9) {}
  void pad(uint16_t* pixel) const { std::memset(pixel, 0, size_t(pixel_values_) * 2); }
  // The block input's rows enter after the epilogue parts (DenseBlockEntries), spread over the step's blocks.
  void enter(int image, int y, int x_begin, int x_end, uint16_t* to) {
    entries_.queue(image, y, x_begin, x_end, to);
  }
  void entered() { entries_.run(round_to_bf16(), pixel_values_, true); }
  void finish() {
    entered();
    Base::finish();
  }
  void conv(int k, int image, int y, int x0, int x1, const uint16_t* const rows[3], uint16_t* own) {
    const PackedConv3x3& wt = *p_.weights[k];
    const auto run = [&](const auto& epilogue) {
      amx_bf16_conv_row(wt, tiles_, configured_, rows, pixel_values_, image, y, x1 - x0, epilogues_, epilogue,
                        [this] { entries_.run(round_to_bf16(), pixel_values_); });
      epilogues_.flush(epilogue);  // the next conv may read this row
    };
    if (k + 1 < p_.count) {
      // bias, LeakyReLU, bf16 into the ring where the later convs read channels [cin, cin + growth): a view of
      // row y from column x0 on (strides 0: any (image, y) is this row)
      FeatureMapBf16 out;
      out.data = own + wt.cin, out.c = int(pixel_values_);
      run([&](const AmxBf16Block& b, float (*sums)[32], int first, int end) {
        amx_bf16_prelu_to_bf16<S>(wt, out, b, sums, first, end);
      });
    } else {
      run([&](const AmxBf16Block& b, float (*sums)[32], int first, int end) {
        dense_block_bf16_residual<S>(p_, wt, x0, b, sums, first, end);
      });
    }
  }

 private:
  auto round_to_bf16() const {
    return [this](int image, int y, int x_begin, int x_end, uint16_t* to) {
      for (int x = x_begin; x < x_end; ++x, to += pixel_values_)
        amx_round_to_bf16(p_.in.at(image, y, x), to, p_.channels);
    };
  }

  DenseBlockEntries<uint16_t> entries_;  // run after each of amx_bf16_block's nine epilogue parts
};

template <class S, class Tiles>
void dense_block_bf16_tiles(const DenseBlockParams& p, const ExecContext& ctx) {
  const int width = p.channels + (p.count - 1) * p.growth;  // channels of the concatenation
  dense_block_wavefront(p, width, ctx, [&] { return DenseBlockBf16Worker<S, Tiles>(p, width); });
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
