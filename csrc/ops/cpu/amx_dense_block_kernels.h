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
#include <numeric>
#include <type_traits>

#include "ops/cpu/amx_bf16_kernels.h"

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

// The traversal both precisions share, over a ring of Worker::Value (bf16 bits, or u8 codes), `pixel_values` a
// pixel. One Worker per thread (make_worker()) holds the tiles and does the arithmetic:
//   pad(pixel)                           a ring pixel outside the image: the padding (real zeros) in every part;
//   enter(image, y, x_begin, x_end, to)  the block input's row y, pixels [x_begin, x_end), into the ring at `to`;
//   conv(k, image, y, x0, x1, rows, own) conv k's output row y, pixels [x0, x1), from its input rows (pixel x0 + x
//                                        at rows[r] + (x + 1) * pixel_values), its output into the ring row `own`
//                                        (pixel x0 first) or, for the last conv, into the block's output;
//   finish()                             at the end of the thread's tasks.
template <class MakeWorker>
void dense_block_wavefront(const DenseBlockParams& p, int64_t pixel_values, const ExecContext& ctx,
                           const MakeWorker& make_worker) {
  using Value = typename std::invoke_result_t<MakeWorker>::Value;
  const int n = p.in.n, h = p.in.h, w = p.in.w, count = p.count;
  // Strips and their rings as kernels.h sizes the thread's scratch for them (dense_block_scratch_floats).
  const int strips = dense_block_strips(w);
  const int64_t ring_pixels = dense_block_ring_pixels(w, count), row_values = ring_pixels * pixel_values;
  const int slots = count + 2;  // rows s - count .. s + 1 are live at step s
  // The fewest bands (of at least 16 rows) that make the tasks a multiple of the threads: each band recomputes
  // rows at its edges, and an uneven share leaves threads idle (3 strips on 2 threads ran 1.3x slower than 4).
  const int bands = std::clamp(ctx.threads / std::gcd(n * strips, ctx.threads), 1, std::max(1, h / 16));
#pragma omp parallel num_threads(ctx.threads)
  {
    auto worker = make_worker();
    // Every ring value a conv reads is written first in the task (block input, conv outputs) or set to the
    // padding (rows and columns outside the image), so the scratch needs no clearing.
    Value* ring = reinterpret_cast<Value*>(ctx.scratch + thread_index() * ctx.scratch_floats_per_thread);
#pragma omp for schedule(dynamic)
    for (int task = 0; task < n * bands * strips; ++task) {
      const int image = task / (bands * strips), band = task / strips % bands, strip = task % strips;
      const int r0 = int(int64_t(h) * band / bands), r1 = int(int64_t(h) * (band + 1) / bands);
      const int c0 = int(int64_t(w) * strip / strips), c1 = int(int64_t(w) * (strip + 1) / strips);
      const int ring_x0 = c0 - count;  // the image column of ring column 0
      // Conv k computes rows [lo(k), hi(k)) and columns [left(k), right(k)): what the band's later convs read.
      const auto lo = [&](int k) { return std::max(0, r0 - (count - 1 - k)); };
      const auto hi = [&](int k) { return std::min(h, r1 + (count - 1 - k)); };
      const auto left = [&](int k) { return std::max(0, c0 - (count - 1 - k)); };
      const auto right = [&](int k) { return std::min(w, c1 + (count - 1 - k)); };
      const auto slot = [&](int y) { return ring + ((y % slots + slots) % slots) * row_values; };
      const auto at = [&](Value* row, int x) { return row + int64_t(x - ring_x0) * pixel_values; };
      // Columns outside the image read the padding: those of this strip's ring (another strip may have used them).
      for (int r = 0; r < slots; ++r)
        for (int x = ring_x0; x < ring_x0 + ring_pixels; ++x)
          if (x < 0 || x >= w) worker.pad(at(slot(r), x));
      // The block input's row y into the ring (the padding outside the image): rows lo(0) - 1 .. hi(0) are read.
      const auto enter = [&](int y) {
        Value* row = slot(y);
        if (y < 0 || y >= h) {
          for (int64_t x = 0; x < ring_pixels; ++x) worker.pad(row + x * pixel_values);
          return;
        }
        const int x_begin = std::max(0, c0 - count), x_end = std::min(w, c1 + count);
        worker.enter(image, y, x_begin, x_end, at(row, x_begin));
      };
      enter(lo(0) - 1), enter(lo(0));
      for (int s = lo(0); s < r1 + count - 1; ++s) {
        if (s + 1 <= hi(0)) enter(s + 1);
        for (int k = 0; k < count; ++k) {
          const int y = s - k, x0 = left(k);
          if (y < lo(k) || y >= hi(k)) continue;
          const Value* rows[3] = {at(slot(y - 1), x0 - 1), at(slot(y), x0 - 1), at(slot(y + 1), x0 - 1)};
          worker.conv(k, image, y, x0, right(k), rows, at(slot(y), x0));
        }
      }
    }
    worker.finish();
  }
}

// The last conv's epilogue params: the scaled residual (and the outer one) on the maps seen from column x0 on,
// so that a block's x is its column in the conv's row.
inline Conv3x3Params dense_block_last_conv(const DenseBlockParams& p, const PackedConv3x3* weights, int x0) {
  Conv3x3Params last;
  const auto from_x0 = [&](FeatureMap f) { return f.data ? (f.data += int64_t(x0) * f.c, f) : f; };
  last.out = from_x0(p.out), last.skip = from_x0(p.in), last.outer_skip = from_x0(p.outer_skip);
  last.skip_scale = p.skip_scale, last.outer_scale = p.outer_scale;
  last.weights = weights, last.epilogue = Epilogue::bias_add_skip;
  return last;
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
  DenseBlockBf16Worker(const DenseBlockParams& p, int64_t pixel_values) : Base(p, pixel_values) {}
  void pad(uint16_t* pixel) const { std::memset(pixel, 0, size_t(pixel_values_) * 2); }
  void enter(int image, int y, int x_begin, int x_end, uint16_t* to) {
    for (int x = x_begin; x < x_end; ++x, to += pixel_values_)
      amx_round_to_bf16(p_.in.at(image, y, x), to, p_.channels);
  }
  void conv(int k, int image, int y, int x0, int x1, const uint16_t* const rows[3], uint16_t* own) {
    const PackedConv3x3& wt = *p_.weights[k];
    const auto run = [&](const auto& epilogue) {
      amx_bf16_conv_row(wt, tiles_, configured_, rows, pixel_values_, image, y, x1 - x0, epilogues_, epilogue);
      epilogues_.flush(epilogue);  // the next conv may read this row
    };
    if (k + 1 < p_.count) {
      // bias, LeakyReLU, bf16 into the ring where the later convs read channels [cin, cin + growth): a view of
      // row y from column x0 on (strides 0: any (image, y) is this row)
      FeatureMapBf16 out;
      out.data = own + wt.cin, out.c = int(pixel_values_);
      run([&](const AmxBf16Block& b, float (*sums)[32]) { amx_bf16_prelu_to_bf16<S>(wt, out, b, sums); });
    } else {
      const Conv3x3Params last = dense_block_last_conv(p_, &wt, x0);
      run([&](const AmxBf16Block& b, float (*sums)[32]) { amx_bf16_epilogue<S>(last, b, sums); });
    }
  }
};

template <class S, class Tiles>
void dense_block_bf16_tiles(const DenseBlockParams& p, const ExecContext& ctx) {
  const int width = p.channels + (p.count - 1) * p.growth;  // channels of the concatenation
  dense_block_wavefront(p, width, ctx, [&] { return DenseBlockBf16Worker<S, Tiles>(p, width); });
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
