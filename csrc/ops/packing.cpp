#include "ops/packing.h"

#include <stdexcept>
#include <string>

namespace srgan_fast {
namespace {

// Winograd F(4x4, 3x3) weight transform G (6x3) with interpolation points 0, +-1, +-2 and infinity
// (Lavin & Gray, 2016). Computed in double: the transformed weights are rounded once, to float or bf16.
constexpr double kG[6][3] = {{1.0 / 4, 0, 0},
                             {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                             {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                             {1.0 / 24, 1.0 / 12, 1.0 / 6},
                             {1.0 / 24, -1.0 / 12, 1.0 / 6},
                             {0, 0, 1}};

// F(3x3, 3x3), points 0, 1, -1, 2, infinity: the tail's 3x3 sub-kernels.
constexpr double kG3[5][3] = {{0.5, 0, 0}, {-0.5, -0.5, -0.5}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                              {1.0 / 6, 1.0 / 3, 2.0 / 3}, {0, 0, 1}};
// F(2x2, 3x3), points 0, +-1, infinity: the bf16 path's transform.
constexpr double kG2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

// U = G g G^T for a 3x3 kernel g; A = rows of G (6 or 4); out: [A][A].
template <int A>
void winograd_weight(const double (&G)[A][3], const float* g, double* out) {
  double t[A][3];  // G g
  for (int i = 0; i < A; ++i)
    for (int j = 0; j < 3; ++j) t[i][j] = G[i][0] * g[0 * 3 + j] + G[i][1] * g[1 * 3 + j] + G[i][2] * g[2 * 3 + j];
  for (int i = 0; i < A; ++i)  // (G g) G^T
    for (int j = 0; j < A; ++j) out[i * A + j] = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
}

}  // namespace

PackedConv3x3 Conv3x3Weights::view() const {
  PackedConv3x3 p;
  p.cin = cin, p.cout = cout;
  p.u = u.data();
  p.u_bf16 = u_bf16.empty() ? nullptr : u_bf16.data();
  p.w_bf16 = w_bf16.empty() ? nullptr : w_bf16.data();
  p.w_up2_bf16 = w_up2_bf16.empty() ? nullptr : w_up2_bf16.data();
  p.bias = bias.data();
  p.alpha = alpha.empty() ? nullptr : alpha.data();
  return p;
}

Conv3x3Weights pack_conv3x3(const float* weight, const float* bias, const float* alpha, int cout_t, int cin_t,
                            bool shuffle, bool with_bf16, bool upsampled2) {
  Conv3x3Weights r;
  r.cin = round_up(cin_t, kChannelAlign);
  const int groups = shuffle ? 4 : 1;              // sub-pixel positions
  const int group_t = cout_t / groups;             // torch channels per group (= cin_t for the upsampler)
  const int group_p = round_up(group_t, kChannelAlign);
  r.cout = groups * group_p;
  // Torch output channel of the upsampler conv for shuffled channel c at sub-pixel s: c * 4 + s.
  auto packed_index = [&](int co_t) { return shuffle ? (co_t % 4) * group_p + co_t / 4 : co_t; };
  r.u.assign(size_t(36) * r.cin * r.cout, 0.f);
  r.bias.assign(r.cout, 0.f);
  if (with_bf16) r.u_bf16.assign(size_t(16) * r.cin * r.cout, 0), r.w_bf16.assign(size_t(9) * r.cin * r.cout, 0);
  const bool up2 = with_bf16 && upsampled2 && !shuffle;
  if (up2) r.w_up2_bf16.assign(size_t(16) * r.cin * r.cout, 0);
  double transformed[36];
  for (int co_t = 0; co_t < cout_t; ++co_t) {
    const int co = packed_index(co_t);
    r.bias[co] = bias[co_t];
    for (int ci = 0; ci < cin_t; ++ci) {
      const float* g = weight + (size_t(co_t) * cin_t + ci) * 9;
      winograd_weight<6>(kG, g, transformed);
      for (int pos = 0; pos < 36; ++pos) r.u[(size_t(pos) * r.cin + ci) * r.cout + co] = float(transformed[pos]);
      if (!with_bf16) continue;
      // AMX B tiles of 16 output channels, one after another: [cout/16][taps][cin/2][16][2]
      const auto b_tile_index = [&](int taps, int tap) {
        return ((size_t(co / 16) * taps + tap) * (r.cin / 2) + ci / 2) * 32 + (co % 16) * 2 + ci % 2;
      };
      for (int tap = 0; tap < 9; ++tap) r.w_bf16[b_tile_index(9, tap)] = float_to_bf16(g[tap]);  // the direct kernel
      if (up2) {
        // Output pixel (2i + a, 2j + b) reads input rows i - 1 + a + ey and columns j - 1 + b + ex, ey, ex in
        // {0, 1}: kernel rows (columns) {0}, {1, 2} for parity 0 and {0, 1}, {2} for parity 1 fall on the same
        // input row (column), so their weights are summed (in double, rounded to bf16 once).
        constexpr int kFirst[2][2] = {{0, 1}, {0, 2}}, kEnd[2][2] = {{1, 3}, {2, 3}};  // [parity][tap]
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b)
            for (int ey = 0; ey < 2; ++ey)
              for (int ex = 0; ex < 2; ++ex) {
                double sum = 0;
                for (int dy = kFirst[a][ey]; dy < kEnd[a][ey]; ++dy)
                  for (int dx = kFirst[b][ex]; dx < kEnd[b][ex]; ++dx) sum += g[dy * 3 + dx];
                r.w_up2_bf16[b_tile_index(16, ((a * 2 + b) * 2 + ey) * 2 + ex)] = float_to_bf16(float(sum));
              }
      }
      winograd_weight<4>(kG2, g, transformed);  // pairs of input channels interleaved: [16][cin/2][cout][2]
      for (int pos = 0; pos < 16; ++pos)
        r.u_bf16[((size_t(pos) * (r.cin / 2) + ci / 2) * r.cout + co) * 2 + ci % 2] = float_to_bf16(float(transformed[pos]));
    }
  }
  if (alpha) {
    const int slopes = shuffle ? group_p : r.cout;
    r.alpha.assign(slopes, 0.f);
    for (int c = 0; c < (shuffle ? group_t : cout_t); ++c) r.alpha[c] = alpha[c];
  }
  return r;
}

HeadWeights pack_head(const float* weight, const float* bias, const float* alpha, int c_t, int cin, int k) {
  HeadWeights r;
  r.c = round_up(c_t, kChannelAlign);
  r.cin = cin, r.k = k;
  const int taps = k * k;
  r.weight.assign(size_t(taps) * cin * r.c, 0.f);
  r.bias.assign(r.c, 0.f);
  r.alpha.assign(r.c, 0.f);
  for (int co = 0; co < c_t; ++co) {
    r.bias[co] = bias[co];
    r.alpha[co] = alpha[co];
    for (int ci = 0; ci < cin; ++ci)
      for (int tap = 0; tap < taps; ++tap)
        r.weight[(size_t(tap) * cin + ci) * r.c + co] = weight[(size_t(co) * cin + ci) * taps + tap];
  }
  return r;
}

TailWeights pack_tail(const float* weight, const float* bias, int c_t, int kernel, bool with_bf16) {
  if (kernel != 9 && !(kernel == 3 && with_bf16))
    throw std::invalid_argument("pack_tail: a 9x9 tail, or a 3x3 one on tiles (bf16), got " +
                                std::to_string(kernel) + "x" + std::to_string(kernel));
  TailWeights r;
  r.kernel = kernel;
  r.c = round_up(c_t, kChannelAlign);
  r.c_bf16 = kernel == 9 ? round_up(c_t, kBf16ChannelAlign) : r.c;  // the tiles read 16 channels at a time
  const int taps = kernel * kernel, group_taps = tail_tile_group_taps(kernel), groups = tail_tile_groups(kernel);
  if (kernel == 9) r.weight_winograd.assign(size_t(9) * 25 * 3 * r.c, 0.f);
  if (kernel == 9 && with_bf16) r.weight_bf16.assign(size_t(81) * 3 * r.c_bf16, 0);
  if (with_bf16) r.weight_tiles.assign(size_t(kernel) * groups * r.c * 16, 0);
  for (int co = 0; co < 3; ++co) {
    r.bias[co] = bias[co];
    for (int ci = 0; ci < c_t; ++ci) {
      const float* g = weight + (size_t(co) * c_t + ci) * taps;
      for (int k = 0; k < taps && with_bf16; ++k) {
        if (kernel == 9) r.weight_bf16[(size_t(k) * 3 + co) * r.c_bf16 + ci] = float_to_bf16(g[k]);
        // Tap (dy, dx) in group dx / S at column 3 (S - 1 - dx % S) + co (amx_tail_kernels.h).
        const int dy = k / kernel, dx = k % kernel, column = 3 * (group_taps - 1 - dx % group_taps) + co;
        const size_t slab = (size_t(dy) * groups + dx / group_taps) * (r.c / 2);
        r.weight_tiles[((slab + ci / 2) * 16 + column) * 2 + ci % 2] = float_to_bf16(g[k]);
      }
      if (kernel != 9) continue;
      for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) {
          float sub[9];  // taps (3a + u, 3b + v)
          for (int u = 0; u < 3; ++u)
            for (int v = 0; v < 3; ++v) sub[u * 3 + v] = g[(3 * a + u) * 9 + 3 * b + v];
          double transformed[25];
          winograd_weight<5>(kG3, sub, transformed);
          for (int pos = 0; pos < 25; ++pos)
            r.weight_winograd[(((size_t(a) * 3 + b) * 25 + pos) * 3 + co) * r.c + ci] = float(transformed[pos]);
        }
    }
  }
  return r;
}

}  // namespace srgan_fast
