// The wavefront a fused residual dense block (DenseBlockParams) walks: the work split into bands of rows and
// strips of columns, each thread walking down its band so that at step s conv k computes row s - k, every row a
// conv reads written earlier in the step or before it. The concatenation lives in a ring of count + 3 rows per
// thread (the strip's columns and `count` more each side): the rows the convs read at step s, s - count .. s + 1,
// and the block input's row s + 2, which enters during the step. Conv k recomputes count - 1 - k rows (columns)
// on each side where its band (strip) borders another, so the result does not depend on the split.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <type_traits>

#include "ops/cpu/isa_template.h"
#include "ops/cpu/kernels.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// The block input's rows that a worker puts off from enter() until entered(): it enters a few pixels of them
// at a time between its tile multiplies, where their loads from memory overlap the tile work (rrdbnet's int8
// blocks took 102.9-110.4 ms against 108.9-116.4 with the rows entered at once, at each step's start; 4
// alternating rounds on a 2-core Xeon with AMX). Value: the ring's.
template <class Value>
class DenseBlockEntries {
 public:
  // run() is called `parts` times a block of 32 pixels x 32 output channels.
  DenseBlockEntries(const DenseBlockParams& p, int parts)
      : slots_per_column_block_(parts * ((p.count - 1) * ((p.growth + 31) / 32) + (p.channels + 31) / 32)) {}
  // Row y's pixels [x_begin, x_end) to enter at `to`, spread over the runs of a step of as many pixels.
  void queue(int image, int y, int x_begin, int x_end, Value* to) {
    rows_[(head_ + count_++) % kMaxRows] = Row{image, y, x_begin, x_end, to};
    const int pixels = x_end - x_begin, slots = slots_per_column_block_ * ((pixels + 31) / 32);
    pixels_per_slot_ = std::max(1, (pixels + slots - 1) / std::max(1, slots));
  }
  // One slot's pixels (all of them, `all`), oldest row first: enter(image, y, x_begin, x_end, to) for each piece.
  template <class Enter>
  void run(const Enter& enter, int64_t pixel_values, bool all = false) {
    for (int pixels = all ? std::numeric_limits<int>::max() : pixels_per_slot_; pixels > 0 && count_ > 0;) {
      Row& row = rows_[head_];
      const int end = int(std::min<int64_t>(row.x_end, int64_t(row.x) + pixels));
      enter(row.image, row.y, row.x, end, row.to);
      pixels -= end - row.x, row.to += int64_t(end - row.x) * pixel_values, row.x = end;
      if (row.x == row.x_end) head_ = (head_ + 1) % kMaxRows, --count_;
    }
  }

 private:
  struct Row {  // its pixels [x, x_end) still to enter, pixel x at `to`
    int image, y, x, x_end;
    Value* to;
  };
  static constexpr int kMaxRows = 3;  // the wavefront enters three rows before its first entered()
  int slots_per_column_block_;        // runs a step makes per 32 pixels: each conv's 32-channel blocks x parts
  Row rows_[kMaxRows];
  int head_ = 0, count_ = 0, pixels_per_slot_ = 1;
};

// The traversal every fused dense block shares (bf16 and int8 on AMX tiles, int8 on VNNI), over a ring of
// Worker::Value (bf16 bits, or u8 codes), `pixel_values` a pixel. One Worker per thread (make_worker()) holds
// its tiles or registers and does the arithmetic:
//   pad(pixel)                           a ring pixel outside the image: the padding (real zeros) in every part;
//   enter(image, y, x_begin, x_end, to)  the block input's row y, pixels [x_begin, x_end), into the ring at `to`,
//                                        which the worker may put off until entered() (it is first read a step
//                                        later);
//   entered()                            every row given to enter() is in the ring;
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
  const int slots = dense_block_ring_rows(count);  // rows s - count .. s + 2 are live at step s
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
      enter(lo(0) - 1), enter(lo(0)), enter(lo(0) + 1);
      for (int s = lo(0); s < r1 + count - 1; ++s) {
        worker.entered();  // conv 0 reads row s + 1
        if (s + 2 <= hi(0)) enter(s + 2);
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

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
