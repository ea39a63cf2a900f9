// Winograd F(MxM, 3x3) convolution (Lavin & Gray, 2016) with fused epilogues, templated on the SIMD traits S
// of one instruction set (simd_<isa>.h). Each MxM output tile needs an AxA input patch, A = M + 2:
//   V = B^T d B (input transform), M = sum over input channels of U * V (A*A GEMMs), Y = A^T M A (output).
// F(4x4): 36 multiplies per 16 outputs and input channel instead of 144, 4x fewer than direct convolution.
// Tiles go in blocks of kTileBlock over all images; each thread transforms, multiplies and stores its own
// blocks, so V and M stay in its cache and the epilogue (bias, PReLU, skip, pixel shuffle) is in the store.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/cpu/conv_epilogue.h"
#include "ops/cpu/isa_template.h"
#include "ops/cpu/kernels.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// The transforms of F(M x M, 3x3) on one row or column of A = M + 2 vectors: B^T (A -> A) and A^T (A -> M).
template <class S, int M>
struct Winograd;

// F(4x4, 3x3), interpolation points 0, +-1, +-2: 36 products per 16 outputs. The fp32 path.
template <class S>
struct Winograd<S, 4> {
  using vf = typename S::vf;
  static void bt(const vf d[6], vf t[6]) {
    const vf four = S::set1(4.f), minus_five = S::set1(-5.f), two = S::set1(2.f);
    const vf d4_m_d2 = S::sub(d[4], d[2]);
    t[0] = S::add(S::fma(four, d[0], d[4]), S::mul(minus_five, d[2]));           // 4d0 - 5d2 + d4
    t[1] = S::sub(S::add(d[3], d[4]), S::mul(four, S::add(d[1], d[2])));          // -4d1 - 4d2 + d3 + d4
    t[2] = S::sub(S::fma(four, S::sub(d[1], d[2]), d[4]), d[3]);                  // 4d1 - 4d2 - d3 + d4
    t[3] = S::add(d4_m_d2, S::mul(two, S::sub(d[3], d[1])));                      // -2d1 - d2 + 2d3 + d4
    t[4] = S::add(d4_m_d2, S::mul(two, S::sub(d[1], d[3])));                      // 2d1 - d2 - 2d3 + d4
    t[5] = S::add(S::fma(four, d[1], d[5]), S::mul(minus_five, d[3]));           // 4d1 - 5d3 + d5
  }
  static void at(const vf m[6], vf o[4]) {
    const vf s12 = S::add(m[1], m[2]), d12 = S::sub(m[1], m[2]);
    const vf s34 = S::add(m[3], m[4]), d34 = S::sub(m[3], m[4]);
    o[0] = S::add(S::add(m[0], s12), s34);
    o[1] = S::fma(S::set1(2.f), d34, d12);
    o[2] = S::fma(S::set1(4.f), s34, s12);
    o[3] = S::add(S::fma(S::set1(8.f), d34, d12), m[5]);
  }
};

// F(2x2, 3x3), points 0, +-1: 16 products per 4 outputs. The bf16 path: its transforms have coefficients
// of magnitude 1, whereas F(4x4)'s (up to 5 in B, 8 in A) amplify the bf16 rounding of V beyond torch's.
template <class S>
struct Winograd<S, 2> {
  using vf = typename S::vf;
  static void bt(const vf d[4], vf t[4]) {
    t[0] = S::sub(d[0], d[2]);
    t[1] = S::add(d[1], d[2]);
    t[2] = S::sub(d[2], d[1]);
    t[3] = S::sub(d[1], d[3]);
  }
  static void at(const vf m[4], vf o[2]) {
    o[0] = S::add(S::add(m[0], m[1]), m[2]);
    o[1] = S::sub(S::sub(m[1], m[2]), m[3]);
  }
};

// Where tile t of the whole batch sits: image, top-left output pixel.
struct TileCoord { int image, y, x; };
// static: internal linkage, so that no instruction-set variant of it is shared between kernels_<isa>.cpp.
static inline TileCoord tile_coord(int64_t t, int tiles_h, int tiles_w, int m) {
  const int64_t per_image = int64_t(tiles_h) * tiles_w;
  const int rem = int(t % per_image);
  return {int(t / per_image), rem / tiles_w * m, rem % tiles_w * m};
}

// V[pos][row][ci] for rows 0..count-1 of a block (rows up to `rows` are zeroed); Tv: float or bf16 bits.
// up > 1: the conv's input is `in` nearest-upsampled, so a patch pixel (y, x) reads (y / up, x / up) of `in`
// (floored: the row and column before the image read the halo's zeros, as the upsampled map's padding).
// A tile that continues the one before it along a tile row shares A - M patch columns with it: their column
// transforms (B^T d) wait in `shared` ([A - M][A][cin] floats, in L1), so only its M new columns are loaded
// from the map (half the loads of F(2x2), a third fewer of F(4x4); the loads are what the transform waits on).
template <class S, class Tv, int M>
void winograd_input_transform(const FeatureMap& in, int up, int64_t first_tile, int count, int rows,
                              int tiles_h, int tiles_w, int cin, Tv* v, float* shared) {
  using vf = typename S::vf;
  constexpr int A = M + 2;
  const int64_t pos_stride = winograd_panel(cin, sizeof(Tv));
  for (int row = count; row < rows; ++row)
    for (int pos = 0; pos < A * A; ++pos) std::fill_n(v + pos * pos_stride + int64_t(row) * cin, cin, Tv(0));
  for (int row = 0; row < count; ++row) {
    const TileCoord tc = tile_coord(first_tile + row, tiles_h, tiles_w, M);
    const float* patch = in.at(tc.image, tc.y - 1, tc.x - 1);  // the halo supplies the zero padding
    int64_t offsets[A][A];  // of each patch pixel from `patch`
    for (int r = 0; r < A; ++r)
      for (int k = 0; k < A; ++k)
        offsets[r][k] = up == 1 ? r * in.row_stride + int64_t(k) * in.c
                                : in.at(tc.image, floor_div(tc.y - 1 + r, up), floor_div(tc.x - 1 + k, up)) - patch;
    const int first_new = row > 0 && tc.x > 0 ? A - M : 0;  // tile row - 1 is its left neighbour
    for (int c = 0; c < cin; c += S::W) {
      vf t[A][A];  // t[k]: B^T d of patch column k
      for (int k = 0; k < A; ++k) {
        if (k < first_new) {
          for (int r = 0; r < A; ++r) t[k][r] = S::load(shared + (k * A + r) * cin + c);
        } else {
          vf col[A];
          for (int r = 0; r < A; ++r) col[r] = S::load(patch + offsets[r][k] + c);
          Winograd<S, M>::bt(col, t[k]);
        }
      }
      for (int k = M; k < A; ++k)  // the next tile's first columns
        for (int r = 0; r < A; ++r) S::store(shared + ((k - M) * A + r) * cin + c, t[k][r]);
      for (int r = 0; r < A; ++r) {  // rows: (B^T d) B
        vf in_row[A], out[A];
        for (int k = 0; k < A; ++k) in_row[k] = t[k][r];
        Winograd<S, M>::bt(in_row, out);
        for (int k = 0; k < A; ++k) {
          Tv* dst = v + (r * A + k) * pos_stride + int64_t(row) * cin + c;
          if constexpr (sizeof(Tv) == 2) S::store_bf16(dst, out[k]); else S::store(dst, out[k]);
        }
      }
    }
  }
}

// C[MR][NV*W] = A[MR][k] * B[k][NV*W]: the fp32 register-blocked micro-kernel.
template <class S, int MR, int NV>
inline void gemm_micro(const float* a, int lda, const float* b, int ldb, float* c, int ldc, int k) {
  using vf = typename S::vf;
  vf acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = S::zero();
  for (int kk = 0; kk < k; ++kk) {
    vf bv[NV];
    for (int j = 0; j < NV; ++j) bv[j] = S::load(b + int64_t(kk) * ldb + j * S::W);
    for (int i = 0; i < MR; ++i) {
      const vf av = S::set1(a[i * lda + kk]);
      for (int j = 0; j < NV; ++j) acc[i][j] = S::fma(av, bv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) S::store(c + i * ldc + j * S::W, acc[i][j]);
}

// The bf16 micro-kernel: A holds bf16 input channels in natural order (pairs adjacent), B holds pairs of
// input channels interleaved per output channel ([k/2][ldb][2]); products accumulate in fp32.
template <class S, int MR, int NV>
inline void gemm_micro_bf16(const uint16_t* a, int lda, const uint16_t* b, int ldb, float* c, int ldc, int k) {
  using vf = typename S::vf;
  vf acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = S::zero();
  for (int kk = 0; kk < k; kk += 2) {
    typename S::vpairs bv[NV];
    for (int j = 0; j < NV; ++j) bv[j] = S::load_pairs(b + (int64_t(kk / 2) * ldb + j * S::W) * 2);
    for (int i = 0; i < MR; ++i) {
      const auto av = S::set1_pair(a + i * lda + kk);
      for (int j = 0; j < NV; ++j) acc[i][j] = S::dot_bf16(acc[i][j], av, bv[j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) S::store(c + i * ldc + j * S::W, acc[i][j]);
}

// M[pos][rows][chunk] for output channels co0 .. co0+chunk of one block, every position.
template <class S, class Tv, int NV>
void winograd_multiply(const Tv* v, const PackedConv3x3& wt, int positions, int co0, int chunk, int rows, float* m) {
  constexpr int MR = S::kGemmRows;
  const int cin = wt.cin;
  for (int pos = 0; pos < positions; ++pos) {
    const Tv* a = v + pos * winograd_panel(cin, sizeof(Tv));
    float* c = m + pos * winograd_panel(chunk, 4);
    for (int col = 0; col < chunk; col += NV * S::W)
      for (int row = 0; row < rows; row += MR) {
        if constexpr (sizeof(Tv) == 2) {
          const uint16_t* b = wt.u_bf16 + (int64_t(pos) * (cin / 2) * wt.cout + co0 + col) * 2;
          gemm_micro_bf16<S, MR, NV>(a + int64_t(row) * cin, cin, b, wt.cout, c + row * chunk + col, chunk, cin);
        } else {
          const float* b = wt.u + int64_t(pos) * cin * wt.cout + co0 + col;
          gemm_micro<S, MR, NV>(a + int64_t(row) * cin, cin, b, wt.cout, c + row * chunk + col, chunk, cin);
        }
      }
  }
}

// The same with the widest column block of the micro-kernel that divides the chunk (a multiple of 16 channels,
// so NV * W = 16 always does): on AVX-512 RRDBNet's 32-channel dense convs take two vectors, so that each
// broadcast of V feeds two products.
template <class S, class Tv, int NV = S::kGemmVecs>
void winograd_multiply_widest(const Tv* v, const PackedConv3x3& wt, int positions, int co0, int chunk, int rows,
                              float* m) {
  if constexpr (NV * S::W > 16) {
    if (chunk % (NV * S::W) != 0)
      return winograd_multiply_widest<S, Tv, NV / 2>(v, wt, positions, co0, chunk, rows, m);
  }
  winograd_multiply<S, Tv, NV>(v, wt, positions, co0, chunk, rows, m);
}

// Y = A^T M A per tile and channel vector, then bias + the epilogue, stored only inside the image.
template <class S, int M>
void winograd_output_transform(const Conv3x3Params& p, const float* m, int co0, int chunk, int64_t first_tile,
                               int count, int tiles_h, int tiles_w) {
  using vf = typename S::vf;
  constexpr int A = M + 2;
  const int64_t pos_stride = winograd_panel(chunk, 4);
  for (int row = 0; row < count; ++row) {
    const TileCoord tc = tile_coord(first_tile + row, tiles_h, tiles_w, M);
    const int ny = std::min(M, p.in.h * p.upsample - tc.y), nx = std::min(M, p.in.w * p.upsample - tc.x);
    for (int c = 0; c < chunk; c += S::W) {
      vf t[M][A], y[M][M];
      for (int k = 0; k < A; ++k) {  // columns: A^T M
        vf col[A], out[M];
        for (int r = 0; r < A; ++r) col[r] = S::load(m + (r * A + k) * pos_stride + int64_t(row) * chunk + c);
        Winograd<S, M>::at(col, out);
        for (int r = 0; r < M; ++r) t[r][k] = out[r];
      }
      for (int r = 0; r < M; ++r) Winograd<S, M>::at(t[r], y[r]);  // rows: (A^T M) A
      store_conv_outputs<S>(p, tc.image, tc.y, tc.x, ny, nx, co0 + c, &y[0][0], M);
    }
  }
}

// Tv = float: F(4x4) in fp32; Tv = uint16_t: F(2x2) with bf16 products (see Winograd<S, 2>).
template <class S, class Tv>
void conv3x3_winograd(const Conv3x3Params& p, const ExecContext& ctx) {
  constexpr int M = sizeof(Tv) == 2 ? 2 : 4, positions = (M + 2) * (M + 2);
  const PackedConv3x3& wt = *p.weights;
  const int tiles_h = (p.in.h * p.upsample + M - 1) / M, tiles_w = (p.in.w * p.upsample + M - 1) / M;
  const int64_t tiles = int64_t(p.in.n) * tiles_h * tiles_w;
  const int64_t blocks = (tiles + kTileBlock - 1) / kTileBlock;
  const int chunk = cout_chunk(wt.cout);
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic)
  for (int64_t block = 0; block < blocks; ++block) {
    float* scratch = ctx.scratch + thread_index() * ctx.scratch_floats_per_thread;
    Tv* v = reinterpret_cast<Tv*>(scratch);
    float* m = scratch + 36 * winograd_panel(wt.cin, 4);  // past V, whichever Tv
    float* shared = m + 36 * winograd_panel(chunk, 4);
    const int64_t first = block * kTileBlock;
    const int count = int(std::min<int64_t>(kTileBlock, tiles - first));
    const int rows = (count + S::kGemmRows - 1) / S::kGemmRows * S::kGemmRows;
    winograd_input_transform<S, Tv, M>(p.in, p.upsample, first, count, rows, tiles_h, tiles_w, wt.cin, v, shared);
    for (int co0 = 0; co0 < wt.cout; co0 += chunk) {
      winograd_multiply_widest<S, Tv>(v, wt, positions, co0, chunk, rows, m);
      winograd_output_transform<S, M>(p, m, co0, chunk, first, count, tiles_h, tiles_w);
    }
  }
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
