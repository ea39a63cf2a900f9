// ESRGAN's residual dense block (DenseBlockParams) on AMX bf16 tiles, as one op that keeps the concatenation
// in cache. Run conv by conv, each conv streams the whole concatenation (192 fp32 channels at 128², 12 MiB)
// through memory and rounds it to bf16 again, which cost RRDBNet about half its time on a 2-core Xeon with AMX.
// Here each thread owns a band of output rows and walks down it as a wavefront: at step s conv k computes row
// s - k, so that every row a conv reads was written earlier in the step or before it. The concatenation lives
// in a ring of count + 2 bf16 rows per thread ([x | conv 0 | ... | conv count-2], one zero pixel each side,
// rows outside the image all zero), from which each conv's A tiles load directly: no copy, no rounding past
// the block input's. A band recomputes count - 1 - k rows of conv k on each side that borders another band.
//
// The bits equal conv3x3_bf16_tiles run conv by conv: the same blocks, the same tile multiplies in the same
// order, and each conv's output rounded to bf16 as the next conv's row rounding does (amx_bf16_bits).
#pragma once

#include <algorithm>
#include <cstring>

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
  const int64_t row_values = int64_t(w + 2) * width;
  const int slots = count + 2;  // rows s - count .. s + 1 are live at step s
  // Bands of at least 16 rows, enough of them to give every thread one.
  const int bands = std::clamp((ctx.threads + n - 1) / n, 1, std::max(1, h / 16));
  Conv3x3Params last;  // the last conv's epilogue: the scaled residual (and the outer one)
  last.out = p.out, last.skip = p.in, last.skip_scale = p.skip_scale, last.outer_skip = p.outer_skip;
  last.outer_scale = p.outer_scale, last.weights = p.weights[count - 1], last.epilogue = Epilogue::bias_add_skip;
#pragma omp parallel num_threads(ctx.threads)
  {
    Tiles tiles;
    AmxBf16Configured configured;
    AmxBf16Epilogues epilogues;
    CacheLineVector<uint16_t> ring(size_t(slots) * row_values, 0);
    const auto slot = [&](int y) { return ring.data() + ((y % slots + slots) % slots) * row_values; };
#pragma omp for schedule(dynamic)
    for (int task = 0; task < n * bands; ++task) {
      const int image = task / bands, band = task % bands;
      const int r0 = int(int64_t(h) * band / bands), r1 = int(int64_t(h) * (band + 1) / bands);
      // Conv k computes rows [lo(k), hi(k)): what the later convs of this band read.
      const auto lo = [&](int k) { return std::max(0, r0 - (count - 1 - k)); };
      const auto hi = [&](int k) { return std::min(h, r1 + (count - 1 - k)); };
      // The block input's row y into the ring (zeros outside the image): rows lo(0) - 1 .. hi(0) are read.
      const auto enter = [&](int y) {
        uint16_t* row = slot(y);
        if (y < 0 || y >= h) return void(std::memset(row, 0, size_t(row_values) * 2));
        for (int x = 0; x < w; ++x) amx_round_to_bf16(p.in.at(image, y, x), row + int64_t(x + 1) * width, p.channels);
      };
      enter(lo(0) - 1), enter(lo(0));
      for (int s = lo(0); s < r1 + count - 1; ++s) {
        if (s + 1 <= hi(0)) enter(s + 1);
        for (int k = 0; k < count; ++k) {
          const int y = s - k;
          if (y < lo(k) || y >= hi(k)) continue;
          const uint16_t* rows[3] = {slot(y - 1), slot(y), slot(y + 1)};
          const PackedConv3x3& wt = *p.weights[k];
          if (k + 1 < count) {
            // bias, LeakyReLU, bf16 into the ring where the later convs read channels [cin, cin + growth)
            uint16_t* out = slot(y) + width + wt.cin;  // pixel 0
            const auto epilogue = [&](const AmxBf16Block& b, float (*sums)[32]) {
              for (int i = 0; i < b.mt; ++i)
                for (int j = 0; j < 16 * b.nt; j += 16) {
                  const typename S::vf bias = S::load(wt.bias + b.co0 + j), slope = S::load(wt.alpha + b.co0 + j);
                  for (int r = 0; r < b.m[i]; ++r) {
                    const typename S::vf value = S::prelu(S::add(S::load(&sums[16 * i + r][j]), bias), slope);
                    uint16_t* at = out + int64_t(b.x0 + 16 * i + r) * width + b.co0 + j;
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(at), amx_bf16_bits(value));
                  }
                }
            };
            amx_bf16_conv_row(wt, tiles, configured, rows, width, image, y, w, epilogues, epilogue);
            // The next conv reads this row: its last block's epilogue runs now.
            epilogues.flush(epilogue);
          } else {
            const auto epilogue = [&](const AmxBf16Block& b, float (*sums)[32]) {
              amx_bf16_epilogue<S>(last, b, sums);
            };
            amx_bf16_conv_row(wt, tiles, configured, rows, width, image, y, w, epilogues, epilogue);
            epilogues.flush(epilogue);
          }
        }
      }
    }
    tiles.release();
  }
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
