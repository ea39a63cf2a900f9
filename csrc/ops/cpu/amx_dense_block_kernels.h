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

template <class S, class Tiles>
void dense_block_bf16_tiles(const DenseBlockParams& p, const ExecContext& ctx) {
  const int n = p.in.n, h = p.in.h, w = p.in.w, count = p.count;
  const int width = p.channels + (count - 1) * p.growth;  // channels of the concatenation
  // Strips and their rings as kernels.h sizes the thread's scratch for them (dense_block_scratch_floats).
  const int strips = dense_block_strips(w);
  const int64_t ring_pixels = dense_block_ring_pixels(w, count), row_values = ring_pixels * width;
  const int slots = count + 2;  // rows s - count .. s + 1 are live at step s
  // The fewest bands (of at least 16 rows) that make the tasks a multiple of the threads: each band recomputes
  // rows at its edges, and an uneven share leaves threads idle (3 strips on 2 threads ran 1.3x slower than 4).
  const int bands = std::clamp(ctx.threads / std::gcd(n * strips, ctx.threads), 1, std::max(1, h / 16));
#pragma omp parallel num_threads(ctx.threads)
  {
    Tiles tiles;
    AmxBf16Configured configured;
    AmxBf16Epilogues epilogues;
    // Every ring value a conv reads is written first in the task (block input, conv outputs) or zeroed (rows and
    // columns outside the image), so the scratch needs no clearing.
    uint16_t* ring = reinterpret_cast<uint16_t*>(ctx.scratch + thread_index() * ctx.scratch_floats_per_thread);
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
      const auto at = [&](uint16_t* row, int x) { return row + int64_t(x - ring_x0) * width; };
      // Columns outside the image read zeros: those of this strip's ring (another strip may have used them).
      for (int r = 0; r < slots; ++r)
        for (int x = ring_x0; x < ring_x0 + ring_pixels; ++x)
          if (x < 0 || x >= w) std::memset(at(slot(r), x), 0, size_t(width) * 2);
      // The block input's row y into the ring (zeros outside the image): rows lo(0) - 1 .. hi(0) are read.
      const auto enter = [&](int y) {
        uint16_t* row = slot(y);
        if (y < 0 || y >= h) return void(std::memset(row, 0, size_t(row_values) * 2));
        for (int x = std::max(0, c0 - count); x < std::min(w, c1 + count); ++x)
          amx_round_to_bf16(p.in.at(image, y, x), at(row, x), p.channels);
      };
      enter(lo(0) - 1), enter(lo(0));
      for (int s = lo(0); s < r1 + count - 1; ++s) {
        if (s + 1 <= hi(0)) enter(s + 1);
        for (int k = 0; k < count; ++k) {
          const int y = s - k, x0 = left(k);
          if (y < lo(k) || y >= hi(k)) continue;
          // Pixel x0 + x of the conv's input rows at rows[r] + (x + 1) * width.
          const uint16_t* rows[3] = {at(slot(y - 1), x0 - 1), at(slot(y), x0 - 1), at(slot(y + 1), x0 - 1)};
          const PackedConv3x3& wt = *p.weights[k];
          const auto run = [&](const auto& epilogue) {
            amx_bf16_conv_row(wt, tiles, configured, rows, width, image, y, right(k) - x0, epilogues, epilogue);
            epilogues.flush(epilogue);  // the next conv may read this row
          };
          if (k + 1 < count) {
            // bias, LeakyReLU, bf16 into the ring where the later convs read channels [cin, cin + growth): a
            // view of row y from column x0 on (the block's x is then its column in the conv's row)
            FeatureMapBf16 out;
            out.data = at(slot(y), x0) + wt.cin, out.c = width;  // strides 0: any (image, y) is this row
            run([&](const AmxBf16Block& b, float (*sums)[32]) { amx_bf16_prelu_to_bf16<S>(wt, out, b, sums); });
          } else {
            // The scaled residual (and the outer one) on the maps seen from column x0 on.
            Conv3x3Params last;
            const auto from_x0 = [&](FeatureMap f) { return f.data ? (f.data += int64_t(x0) * f.c, f) : f; };
            last.out = from_x0(p.out), last.skip = from_x0(p.in), last.outer_skip = from_x0(p.outer_skip);
            last.skip_scale = p.skip_scale, last.outer_scale = p.outer_scale;
            last.weights = &wt, last.epilogue = Epilogue::bias_add_skip;
            run([&](const AmxBf16Block& b, float (*sums)[32]) { amx_bf16_epilogue<S>(last, b, sums); });
          }
        }
      }
    }
    tiles.release();
  }
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
