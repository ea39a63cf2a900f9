// Packing a 3x3 conv for the int8 kernels: weights quantized symmetrically per output channel, the input's
// zero point folded into a per-channel compensation (see PackedConv3x3Int8).
#pragma once

#include <cstdint>
#include <vector>

#include "ops/params.h"

namespace srgan_fast {

// The weight scale of one output channel: max |w| / weight_max (1 for an all-zero channel), so codes span
// [-weight_max, weight_max] (symmetric; CpuKernels::int8_weight_max; tests quantize the same way).
float int8_weight_scale(const float* w, int count, int weight_max);

struct Conv3x3Int8Weights {
  int cin = 0, cout = 0;  // padded
  CacheLineVector<int8_t> w;  // AMX B tiles too
  std::vector<int16_t> u;  // winograd only
  std::vector<int32_t> compensation;
  std::vector<float> scale, bias, alpha;
  int input_zero_point = 0;
  PackedConv3x3Int8 view() const;
};

// `shuffle`: the upsampler's conv (cout_t = 4 * its shuffled channels), reordered sub-pixel major.
// `winograd`: also the integer Winograd F(2x2) weights of int8_winograd_kernels.h.
Conv3x3Int8Weights pack_conv3x3_int8(const float* weight,  // [cout_t][cin_t][3][3]
                                     const float* bias,    // [cout_t]
                                     const float* alpha,   // [cout_t], [cout_t / 4] (shuffle) or null
                                     int cout_t, int cin_t, bool shuffle, const QuantCodes& input, int weight_max,
                                     bool winograd);

// A conv of a fused int8 dense block (DenseBlockParams), whose input channels come from maps with different
// codes: input[ci] are the codes of input channel ci. Each weight is first multiplied by its input channel's
// scale, then the channel's folded weights are quantized symmetrically as above, to codes q of scale s[co].
// The epilogue is one multiply-add from the raw sum: factor * (s * (sum - compensation) + bias) is
//   sum * scale[co] + bias[co], with scale = factor * s, bias = factor * (bias - s * compensation),
// compensation being the sum of each weight code times its input channel's zero point (so `compensation` is
// left empty). factor: 1 / the output's code scale for a conv writing codes (LeakyReLU commutes with a
// positive factor), the residual's scale for the last. Input channels are padded with zero weights to a
// multiple of 64 (the tiles' K), output channels to kChannelAlign.
Conv3x3Int8Weights pack_dense_conv_int8(const float* weight,  // [cout_t][cin_t][3][3]
                                        const float* bias,    // [cout_t]
                                        const float* alpha,   // [cout_t] or null
                                        int cout_t, int cin_t, const std::vector<QuantCodes>& input,
                                        int weight_max, float factor);

}  // namespace srgan_fast
