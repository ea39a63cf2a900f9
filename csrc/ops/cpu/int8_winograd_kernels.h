// int8 3x3 convolution by Winograd F(2x2, 3x3) in integers, for instruction sets without u8 x s8 dot products
// that keep a full s32 sum (AVX2: VPMADDUBSW adds its pairs in s16 with saturation). Exact, and the same
// integers as the direct kernel: with 2G = [[2,0,0],[1,1,1],[1,-1,1],[0,0,2]] the weights' transform
// U = (2G) w (2G)^T is an integer (|U| <= 9 * 127), the inputs' V = B^T (code - zero point) B is an integer
// (|V| <= 4 * code_max), both fit s16, and A^T (U . V) A = 4 * the direct sum, which s32 holds while
// 4 * 9 * cin * code_max * 127 does (the s32 sums wrap on the way, and wrap back: integer sums are exact modulo
// 2^32). So the codes may be wider than 8 bits, in u16 maps, at no cost in instructions: dispatch.h's
// int8_code_max. 16 products per 4 outputs instead of 36. (Larger tiles were measured and lost: docs/native.md,
// "Not done".)
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/cpu/int8_epilogue.h"
#include "ops/cpu/winograd_kernels.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// V[pos][row][ci] as s16 for rows 0..count-1 of a block (rows up to `rows` zeroed), from u8 or u16 codes. The
// transform runs in float: its values are small integers, exact in fp32.
template <class S, class Code>
void int8_input_transform(const FeatureMapT<Code>& in, int zero_point, int64_t first_tile, int count, int rows,
                          int tiles_h, int tiles_w, int cin, int16_t* v) {
  using vf = typename S::vf;
  const int64_t pos_stride = winograd_panel(cin, 2);
  const typename S::vi zp = S::set1_i(zero_point);
  for (int row = 0; row < rows; ++row) {
    if (row >= count) {
      for (int pos = 0; pos < 16; ++pos) std::fill_n(v + pos * pos_stride + int64_t(row) * cin, cin, int16_t(0));
      continue;
    }
    const TileCoord tc = tile_coord(first_tile + row, tiles_h, tiles_w, 2);
    const Code* patch = in.at(tc.image, tc.y - 1, tc.x - 1);  // the halo holds the zero point
    for (int c = 0; c < cin; c += S::W) {
      vf d[4][4], t[4][4];
      for (int r = 0; r < 4; ++r)
        for (int k = 0; k < 4; ++k) d[r][k] = S::centred_codes(patch + r * in.row_stride + int64_t(k) * in.c + c, zp);
      for (int k = 0; k < 4; ++k) {
        vf col[4], out[4];
        for (int r = 0; r < 4; ++r) col[r] = d[r][k];
        Winograd<S, 2>::bt(col, out);
        for (int r = 0; r < 4; ++r) t[r][k] = out[r];
      }
      for (int r = 0; r < 4; ++r) {
        vf out[4];
        Winograd<S, 2>::bt(t[r], out);
        for (int k = 0; k < 4; ++k) S::store_s16(v + (r * 4 + k) * pos_stride + int64_t(row) * cin + c, out[k]);
      }
    }
  }
}

// M[pos][rows][chunk] (s32) for output channels co0 .. co0+chunk: per position, V (rows x cin) times U.
template <class S>
void int8_winograd_multiply(const int16_t* v, const PackedConv3x3Int8& wt, int co0, int chunk, int rows,
                            int32_t* m) {
  using vi = typename S::vi;
  constexpr int MR = S::kInt8Rows, NV = S::kInt8Vecs;
  const int cin = wt.cin;
  for (int pos = 0; pos < 16; ++pos) {
    const int16_t* a = v + pos * winograd_panel(cin, 2);
    int32_t* c = m + pos * winograd_panel(chunk, 4);
    const int16_t* b = wt.u + (int64_t(pos) * (cin / 2) * wt.cout + co0) * 2;
    for (int col = 0; col < chunk; col += NV * S::W)
      for (int row = 0; row < rows; row += MR) {
        vi acc[MR][NV];
        for (int i = 0; i < MR; ++i)
          for (int j = 0; j < NV; ++j) acc[i][j] = S::zero_i();
        for (int k = 0; k < cin; k += 2) {
          vi w[NV];
          for (int j = 0; j < NV; ++j) w[j] = S::load_i(b + (int64_t(k / 2) * wt.cout + col + j * S::W) * 2);
          for (int i = 0; i < MR; ++i) {
            const vi pair = S::set1_pair_s16(a + int64_t(row + i) * cin + k);
            for (int j = 0; j < NV; ++j) acc[i][j] = S::madd_s16(acc[i][j], pair, w[j]);
          }
        }
        for (int i = 0; i < MR; ++i)
          for (int j = 0; j < NV; ++j) S::store_i(c + (row + i) * chunk + col + j * S::W, acc[i][j]);
      }
  }
}

// Y = A^T M A / 4 per tile (exact: M sums 4 x the direct products), then the int8 epilogue.
template <class S>
void int8_output_transform(const Conv3x3Int8Params& p, const int32_t* m, int co0, int chunk, int64_t first_tile,
                           int count, int tiles_h, int tiles_w, int h, int w) {
  using vi = typename S::vi;
  const int64_t pos_stride = winograd_panel(chunk, 4);
  for (int row = 0; row < count; ++row) {
    const TileCoord tc = tile_coord(first_tile + row, tiles_h, tiles_w, 2);
    const int ny = std::min(2, h - tc.y), nx = std::min(2, w - tc.x);
    for (int c = 0; c < chunk; c += S::W) {
      vi t[2][4];
      for (int k = 0; k < 4; ++k) {  // columns: A^T M
        vi col[4];
        for (int r = 0; r < 4; ++r) col[r] = S::load_i(m + (r * 4 + k) * pos_stride + int64_t(row) * chunk + c);
        t[0][k] = S::add_i(S::add_i(col[0], col[1]), col[2]);
        t[1][k] = S::sub_i(S::sub_i(col[1], col[2]), col[3]);
      }
      for (int r = 0; r < ny; ++r) {  // rows: (A^T M) A
        const vi y0 = S::add_i(S::add_i(t[r][0], t[r][1]), t[r][2]);
        const vi y1 = S::sub_i(S::sub_i(t[r][1], t[r][2]), t[r][3]);
        store_int8_sum<S>(p, tc.image, tc.y + r, tc.x, co0 + c, S::shift_right_2(y0));
        if (nx > 1) store_int8_sum<S>(p, tc.image, tc.y + r, tc.x + 1, co0 + c, S::shift_right_2(y1));
      }
    }
  }
}

template <class S, class Code>
void conv3x3_int8_winograd(const Conv3x3Int8Params& p, const FeatureMapT<Code>& in, const ExecContext& ctx) {
  const PackedConv3x3Int8& wt = *p.weights;
  const int tiles_h = (in.h + 1) / 2, tiles_w = (in.w + 1) / 2;
  const int64_t tiles = int64_t(in.n) * tiles_h * tiles_w;
  const int64_t blocks = (tiles + kTileBlock - 1) / kTileBlock;
  const int chunk = cout_chunk(wt.cout);
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic)
  for (int64_t block = 0; block < blocks; ++block) {
    float* scratch = ctx.scratch + thread_index() * ctx.scratch_floats_per_thread;
    int16_t* v = reinterpret_cast<int16_t*>(scratch);
    int32_t* m = reinterpret_cast<int32_t*>(scratch + 8 * winograd_panel(wt.cin, 2));  // past 16 s16 panels
    const int64_t first = block * kTileBlock;
    const int count = int(std::min<int64_t>(kTileBlock, tiles - first));
    const int rows = (count + S::kInt8Rows - 1) / S::kInt8Rows * S::kInt8Rows;
    int8_input_transform<S>(in, wt.input_zero_point, first, count, rows, tiles_h, tiles_w, wt.cin, v);
    for (int co0 = 0; co0 < wt.cout; co0 += chunk) {
      int8_winograd_multiply<S>(v, wt, co0, chunk, rows, m);
      int8_output_transform<S>(p, m, co0, chunk, first, count, tiles_h, tiles_w, in.h, in.w);
    }
  }
}

// Reads p.in_u16 where it is set (codes past 255, see dispatch.h's int8_code_max), else p.in.
template <class S>
void conv3x3_int8_winograd(const Conv3x3Int8Params& p, const ExecContext& ctx) {
  if (p.in_u16.data) conv3x3_int8_winograd<S, uint16_t>(p, p.in_u16, ctx);
  else conv3x3_int8_winograd<S, uint8_t>(p, p.in, ctx);
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
