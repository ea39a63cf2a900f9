#include "ops/packing_int8.h"

#include <algorithm>
#include <cmath>

namespace srgan_fast {
namespace {

// 2 x the F(2x2, 3x3) weight transform G (points 0, +-1, infinity): integer, so U = (2G) q (2G)^T is exact.
constexpr int kG2x2[4][3] = {{2, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 2}};

// A weight's code at its output channel's scale: round to nearest, clamped to [-weight_max, weight_max].
int weight_code(float weight, float w_scale, int weight_max) {
  const float limit = float(weight_max);
  return int(std::clamp(std::nearbyint(weight / w_scale), -limit, limit));
}

// Where weight (co, ci, tap) goes in the direct kernels' [9 taps][cin/4][cout][4] layout (VPDPBUSD, TDPBUSD).
size_t direct_index(int tap, int ci, int co, int cin, int cout) {
  return ((size_t(tap) * (cin / 4) + ci / 4) * cout + co) * 4 + ci % 4;
}

}  // namespace

float int8_weight_scale(const float* w, int count, int weight_max) {
  float max_abs = 0.f;
  for (int i = 0; i < count; ++i) max_abs = std::max(max_abs, std::fabs(w[i]));
  return max_abs > 0.f ? max_abs / float(weight_max) : 1.f;
}

PackedConv3x3Int8 Conv3x3Int8Weights::view() const {
  PackedConv3x3Int8 p;
  p.cin = cin, p.cout = cout;
  p.w = w.data(), p.compensation = compensation.data(), p.scale = scale.data(), p.bias = bias.data();
  p.alpha = alpha.empty() ? nullptr : alpha.data();
  p.u = u.empty() ? nullptr : u.data();
  p.input_zero_point = input_zero_point;
  return p;
}

Conv3x3Int8Weights pack_conv3x3_int8(const float* weight, const float* bias, const float* alpha, int cout_t,
                                     int cin_t, bool shuffle, const QuantCodes& input, int weight_max,
                                     bool winograd) {
  Conv3x3Int8Weights r;
  r.cin = round_up(cin_t, kChannelAlign);
  const int groups = shuffle ? 4 : 1;
  const int group_t = cout_t / groups, group_p = round_up(group_t, kChannelAlign);
  r.cout = groups * group_p;
  const auto packed_index = [&](int co_t) { return shuffle ? (co_t % 4) * group_p + co_t / 4 : co_t; };
  r.w.assign(size_t(9) * r.cin * r.cout, 0);
  r.compensation.assign(r.cout, 0);
  r.scale.assign(r.cout, 0.f);
  r.bias.assign(r.cout, 0.f);
  r.input_zero_point = input.zero_point;
  if (winograd) r.u.assign(size_t(16) * r.cin * r.cout, 0);
  const int per_channel = cin_t * 9;
  for (int co_t = 0; co_t < cout_t; ++co_t) {
    const int co = packed_index(co_t);
    const float* g = weight + size_t(co_t) * per_channel;
    const float w_scale = int8_weight_scale(g, per_channel, weight_max);
    int32_t sum = 0;
    for (int ci = 0; ci < cin_t; ++ci) {
      int q[9];
      for (int tap = 0; tap < 9; ++tap) {
        q[tap] = weight_code(g[ci * 9 + tap], w_scale, weight_max);
        r.w[direct_index(tap, ci, co, r.cin, r.cout)] = int8_t(q[tap]);
        sum += q[tap];
      }
      if (!winograd) continue;
      int t[4][3];  // (2G) q
      for (int j = 0; j < 3; ++j)
        for (int i = 0; i < 4; ++i) t[i][j] = kG2x2[i][0] * q[j] + kG2x2[i][1] * q[3 + j] + kG2x2[i][2] * q[6 + j];
      for (int i = 0; i < 4; ++i)  // (2G q) (2G)^T: pairs of input channels interleaved per output channel
        for (int j = 0; j < 4; ++j)
          r.u[((size_t(i * 4 + j) * (r.cin / 2) + ci / 2) * r.cout + co) * 2 + ci % 2] =
              int16_t(t[i][0] * kG2x2[j][0] + t[i][1] * kG2x2[j][1] + t[i][2] * kG2x2[j][2]);
    }
    r.compensation[co] = input.zero_point * sum;
    r.scale[co] = input.scale * w_scale;
    r.bias[co] = bias[co_t];
  }
  if (alpha) {
    r.alpha.assign(shuffle ? group_p : r.cout, 0.f);
    for (int c = 0; c < (shuffle ? group_t : cout_t); ++c) r.alpha[c] = alpha[c];
  }
  return r;
}

Conv3x3Int8Weights pack_dense_conv_int8(const float* weight, const float* bias, const float* alpha, int cout_t,
                                        int cin_t, const std::vector<QuantCodes>& input, int weight_max,
                                        float factor) {
  Conv3x3Int8Weights r;
  r.cin = round_up(cin_t, 64), r.cout = round_up(cout_t, kChannelAlign);
  r.w.assign(size_t(9) * r.cin * r.cout, 0);
  r.scale.assign(r.cout, 0.f);
  r.bias.assign(r.cout, 0.f);
  r.alpha.assign(alpha ? r.cout : 0, 0.f);
  const int per_channel = cin_t * 9;
  std::vector<float> folded(per_channel);
  for (int co = 0; co < cout_t; ++co) {
    const float* g = weight + size_t(co) * per_channel;
    for (int i = 0; i < per_channel; ++i) folded[i] = g[i] * input[i / 9].scale;
    const float w_scale = int8_weight_scale(folded.data(), per_channel, weight_max);
    int32_t compensation = 0;
    for (int ci = 0; ci < cin_t; ++ci)
      for (int tap = 0; tap < 9; ++tap) {
        const int q = weight_code(folded[ci * 9 + tap], w_scale, weight_max);
        r.w[direct_index(tap, ci, co, r.cin, r.cout)] = int8_t(q);
        compensation += q * input[ci].zero_point;
      }
    r.scale[co] = factor * w_scale;
    r.bias[co] = factor * (bias[co] - w_scale * float(compensation));
    if (alpha) r.alpha[co] = alpha[co];
  }
  return r;
}

}  // namespace srgan_fast
