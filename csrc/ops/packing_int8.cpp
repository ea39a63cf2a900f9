#include "ops/packing_int8.h"

#include <algorithm>
#include <cmath>

namespace srgan_fast {

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
  return p;
}

Conv3x3Int8Weights pack_conv3x3_int8(const float* weight, const float* bias, const float* alpha, int cout_t,
                                     int cin_t, bool shuffle, const QuantU8& input, int weight_max) {
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
  const int per_channel = cin_t * 9;
  for (int co_t = 0; co_t < cout_t; ++co_t) {
    const int co = packed_index(co_t);
    const float* g = weight + size_t(co_t) * per_channel;
    const float w_scale = int8_weight_scale(g, per_channel, weight_max);
    const float limit = float(weight_max);
    int32_t sum = 0;
    for (int ci = 0; ci < cin_t; ++ci)
      for (int tap = 0; tap < 9; ++tap) {
        const int q = int(std::clamp(std::nearbyint(g[ci * 9 + tap] / w_scale), -limit, limit));
        r.w[((size_t(tap) * (r.cin / 4) + ci / 4) * r.cout + co) * 4 + ci % 4] = int8_t(q);
        sum += q;
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

}  // namespace srgan_fast
