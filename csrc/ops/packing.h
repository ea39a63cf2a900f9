// Packing torch-layout weights ([out, in, kh, kw] float32) once into the layouts the CPU kernels read.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "ops/params.h"

namespace srgan_fast {

inline uint16_t float_to_bf16(float x) {  // round to nearest even, as VCVTNEPS2BF16 does
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

// A 3x3 conv in the Winograd domain. `shuffle`: the upsampler's conv (cout = 4 * cin in torch), whose
// output channels are reordered sub-pixel major and whose PReLU has one slope per shuffled channel.
struct Conv3x3Weights {
  int cin = 0, cout = 0;  // padded
  std::vector<float> u, bias, alpha;
  std::vector<uint16_t> u_bf16;
  CacheLineVector<uint16_t> w_bf16;  // AMX B tiles
  CacheLineVector<uint16_t> w_up2_bf16;  // AMX B tiles of the four 2x2 kernels on a x2 upsampled input
  PackedConv3x3 view() const;
};
// upsampled2: the conv reads its input nearest-upsampled by 2 (with_bf16: also w_up2_bf16).
Conv3x3Weights pack_conv3x3(const float* weight,  // [cout_t][cin_t][3][3]
                            const float* bias,    // [cout_t]
                            const float* alpha,   // [cout_t] (bias_prelu), [cin_t] (shuffle) or null
                            int cout_t, int cin_t, bool shuffle, bool with_bf16, bool upsampled2 = false);

struct HeadWeights {
  int c = 0;    // padded output channels
  int cin = 3;  // the image's channels
  int k = 9;    // kernel size
  std::vector<float> weight, bias, alpha;  // [k][k][cin][c], [c], [c]
};
HeadWeights pack_head(const float* weight /*[c_t][cin][k][k]*/, const float* bias, const float* alpha, int c_t,
                      int cin, int k);

// bf16 dot products take 32 channels per vector: the bf16 copy pads channels to a multiple of 32.
constexpr int kBf16ChannelAlign = 32;

// A 9x9 tail has all three forms (with_bf16: the bf16 ones too); a 3x3 one only the tiles' (amx_tail_kernels.h).
struct TailWeights {
  int kernel = 9;
  int c = 0;       // padded input channels
  int c_bf16 = 0;  // padded input channels of a bf16 map the tail reads (9x9: for AVX512_BF16's pairs of 16)
  std::vector<float> weight_winograd; // 9x9: [9][25][3][c]: sub-kernel (a, b) = taps (3a.., 3b..), F(3x3, 3x3)
  std::vector<uint16_t> weight_bf16;  // 9x9: [9][9][3][c_bf16], or empty
  CacheLineVector<uint16_t> weight_tiles;  // [k dy][dx groups][c/2][16][2] AMX B tiles, or empty
  float bias[3] = {0, 0, 0};
};
TailWeights pack_tail(const float* weight /*[3][c_t][k][k]*/, const float* bias, int c_t, int kernel,
                      bool with_bf16);

}  // namespace srgan_fast
