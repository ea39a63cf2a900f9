// Plain parameter structs for the fused ops: pointers, sizes and strides only, shared by every kernel path.
#pragma once

#include <cstdint>

#include "ops/feature_map.h"
#include "ops/precision.h"

namespace srgan_fast {

enum class DType { u8, u16, f32 };  // image element types at the engine's boundary

// The full-scale value that maps to 1.0 (uint8: 255, uint16: 65535, float32: 1). Static: the per-instruction-set
// kernels use it too, each with its own copy.
static inline float full_scale(DType t) { return t == DType::u8 ? 255.f : t == DType::u16 ? 65535.f : 1.f; }

// What a 3x3 convolution does with its result before storing it.
enum class Epilogue {
  bias_prelu,          // out = prelu(conv(in) + bias)                        first conv of a residual block
  bias_add_skip,       // out = conv(in) + bias + skip  (skip may alias out)    second conv, trunk conv
  bias_shuffle_prelu,  // out[2y+i, 2x+j, c] = prelu(conv(in)[y, x, (2i+j)*C + c] + bias)   upsampler
};

// Winograd weights, transformed and packed once: F(4x4, 3x3) in fp32, F(2x2, 3x3) in bf16. Output channels of the upsampler are reordered
// sub-pixel major ((2i+j)*cin + c) so that each sub-pixel's channels are contiguous in the store.
struct PackedConv3x3 {
  int cin = 0, cout = 0;               // padded channel counts (multiples of kChannelAlign)
  const float* u = nullptr;            // [36][cin][cout]          fp32 Winograd-domain weights
  const uint16_t* u_bf16 = nullptr;    // [16][cin/2][cout][2]     bf16 pairs of input channels (or null)
  const uint16_t* w_bf16 = nullptr;    // [cout/16][9 taps][cin/2][16][2] the direct kernel in bf16 pairs:
                                       //   AMX TDPBF16PS B tiles, contiguous (or null)
  // A conv reading its input nearest-upsampled by 2: [cout/16][2 row parities][2 column parities][4 taps]
  // [cin/2][16][2], the same B tiles for the four 2x2 kernels it is on the input itself, one per parity of the
  // output pixel (see amx_upsampled_kernels.h), or null.
  const uint16_t* w_up2_bf16 = nullptr;
  const float* bias = nullptr;         // [cout]
  const float* alpha = nullptr;        // PReLU slopes: [cout], or [cout/4] for the shuffle epilogue
};

// Head: k x k conv (k odd, <= 9) 3 -> C on the raw image + bias + PReLU, reading the image dtype directly.
struct HeadParams {
  const void* image = nullptr;  // [n, h, w, cin] C-contiguous, u8/u16/f32
  DType dtype = DType::f32;
  int n = 0, h = 0, w = 0;
  int cin = 3;                    // the image's channels (12: RGB pixel-unshuffled by 2)
  int cout = 0;                   // output channels, a multiple of kChannelAlign
  int k = 9;                      // kernel size
  const float* weight = nullptr;  // [k][k][cin][cout]
  const float* bias = nullptr;    // [cout]
  const float* alpha = nullptr;   // [cout]
  FeatureMap out;                 // [n, h, w, >= cout]
  FeatureMap out_copy;            // optional second destination (data == nullptr: none): the trunk's skip
};

struct Conv3x3Params {
  FeatureMap in;    // [n, h, w, >= cin] (the first cin channels are read); only its geometry where in_bf16 is set
  FeatureMapBf16 in_bf16;  // when data is set, the input as bf16 (where CpuKernels::conv3x3_bf16_maps says)
  int upsample = 1; // the conv runs on `in` nearest-upsampled by this: [n, upsample*h, upsample*w, cin]
  FeatureMap out;   // [n, H, W, cout] at the conv's size H x W  (shuffle: [n, 2H, 2W, cout/4])
  // When data is set, store there as bf16 instead of to out: the shuffle epilogue, and bias_prelu where
  // CpuKernels::conv3x3_bf16_maps says
  FeatureMapBf16 out_bf16;
  FeatureMap skip;  // bias_add_skip only: same geometry as out
  float skip_scale = 1.f;  // bias_add_skip: out = skip_scale * (conv + bias) + skip
  FeatureMap outer_skip;   // bias_add_skip, when data is set: then out = outer_scale * out + outer_skip
  float outer_scale = 1.f;
  const PackedConv3x3* weights = nullptr;
  Epilogue epilogue = Epilogue::bias_prelu;
};

// The tail on AMX tiles (amx_tail_kernels.h) puts a group of a row's horizontal taps x the 3 outputs in a B tile's
// 16 columns: up to 5 taps a group (15 columns), so a 9x9 row is 2 groups and a 3x3 row one.
constexpr int tail_tile_group_taps(int kernel) { return kernel < 5 ? kernel : 5; }
constexpr int tail_tile_groups(int kernel) {
  return (kernel + tail_tile_group_taps(kernel) - 1) / tail_tile_group_taps(kernel);
}

// Tail: k x k conv C -> 3 + bias, then scale to the dtype's range, round, clamp and store. k is 9 (SRResNet), or 3
// (RRDBNet's conv_last) where the path runs it on AMX tiles (CpuKernels::tail_3x3).
struct TailParams {
  int kernel = 9;
  FeatureMap in;                  // [n, h, w, C] (tail_bf16: its geometry and C only)
  const float* weight_winograd = nullptr;  // 9x9: [9 sub-kernels][25][3][in.c]   F(3x3, 3x3) of each 3x3 sub-kernel
  FeatureMapBf16 in_bf16;         // tail_bf16: the input as bf16, channel stride a multiple of 32 (3x3: of 16)
  const uint16_t* weight_bf16 = nullptr;  // tail_bf16, 9x9: [9][9][3][in_bf16.c]
  const uint16_t* weight_tiles = nullptr; // [k][groups][in.c/2][16][2] bf16 pairs, AMX B tiles (or null)
  float bias[3] = {0, 0, 0};
  void* out = nullptr;            // [n, h, w, 3] C-contiguous
  DType dtype = DType::f32;
};

// The network's last step when it ends in a feature map rather than the tail: PixelShuffle(shuffle) of `in`,
// plus the input image upsampled ×scale (``skip``), clamped to [0, 1], scaled, rounded, stored in `dtype`.
struct ImageOutputParams {
  FeatureMap in;               // [n, rows/shuffle, w*scale/shuffle, >= 3*shuffle^2]: from output row first_row on
  int shuffle = 1;             // output channel c of sub-pixel (i, j) is input channel c*shuffle^2 + i*shuffle + j
  const void* image = nullptr; // [n, h, w, 3] the network's input, C-contiguous, of `dtype`
  ImageSkip skip = ImageSkip::none;
  int n = 0, h = 0, w = 0, scale = 1;
  void* out = nullptr;         // [n, h*scale, w*scale, 3] C-contiguous
  DType dtype = DType::f32;
  int first_row = 0, rows = 0;  // the output rows stored (a band of them; first_row a multiple of shuffle); 0: all
};

// int8 precision: an activation tensor's codes, real = scale * (code - zero_point), code in [0, code_max]:
// 255 in u8 maps, more in u16 maps where the path's sums stay exact with wider codes (see int8_code_max in
// dispatch.h). The zero point lets the signed outputs of a PReLU use the whole code range; real 0 is exactly
// zero_point.
struct QuantCodes {
  float scale = 1.f;
  int zero_point = 0;
  float inv_scale = 1.f;  // 1 / scale: codes are round(value * inv_scale) + zero_point
  int code_max = 255;
};

// A 3x3 conv packed for u8 x s8 dot products (VPDPBUSD: four input channels per 32-bit lane), its weights
// quantized symmetrically per output channel and its input's zero point folded into `compensation`:
//   y[co] = float(sum(code * w_q) - compensation[co]) * scale[co] + bias[co].
// The upsampler's output channels are reordered sub-pixel major, as in PackedConv3x3.
struct PackedConv3x3Int8 {
  int cin = 0, cout = 0;                 // padded channel counts (multiples of kChannelAlign)
  const int8_t* w = nullptr;             // [9 taps][cin/4][cout][4]
  const int32_t* compensation = nullptr; // [cout] input zero point * sum of the channel's quantized weights
  const float* scale = nullptr;          // [cout] input scale * the channel's weight scale
  const float* bias = nullptr;           // [cout]
  const float* alpha = nullptr;          // PReLU slopes: [cout], or [cout/4] for the shuffle epilogue
  const int16_t* u = nullptr;            // Winograd F(2x2) kernel: [16][cin/2][cout][2] (2G) w (2G)^T, or null
  int input_zero_point = 0;
};

// Each destination is optional (data == nullptr: not stored); at least one is set.
struct Conv3x3Int8Params {
  FeatureMapU8 in;          // [n, h, w, cin] codes of the input's QuantCodes (the halo holds its zero point)
  FeatureMapU16 in_u16;     // or the same as u16 codes (code_max > 255); exactly one of in, in_u16 is set
  FeatureMap skip;          // bias_add_skip only: float32, geometry of the output
  FeatureMap out;           // float32 result: [n, h, w, cout] (shuffle: [n, 2h, 2w, cout/4])
  FeatureMapBf16 out_bf16;  // the result as bf16 (the bf16 tail's input)
  FeatureMapU8 out_u8;      // the result quantized by out_quant (the next int8 conv's input)
  FeatureMapU16 out_u16;    // the same in u16 codes (out_quant.code_max > 255)
  QuantCodes out_quant;
  const PackedConv3x3Int8* weights = nullptr;
  Epilogue epilogue = Epilogue::bias_prelu;
};

// ESRGAN's residual dense block as one op: `count` convs, conv k reading the first channels + k * growth
// channels of the concatenation [in | conv 0 | conv 1 | ...] and adding its bias and PReLU (LeakyReLU), the
// last conv (-> channels) adding skip_scale * (conv + bias) to `in`, then, where outer_skip is set,
// out = outer_scale * out + outer_skip. The convs' own maps are never stored: only `out` is written.
constexpr int kMaxDenseConvs = 8;
struct DenseBlockParams {
  FeatureMap in;   // [n, h, w, >= channels] the block's input (its first `channels` channels are read)
  int channels = 0, growth = 0, count = 0;
  const PackedConv3x3* weights[kMaxDenseConvs] = {};  // conv k: channels + k * growth -> growth (last: channels)
  FeatureMap out;  // [n, h, w, >= channels]; never the memory of `in` or `outer_skip`
  float skip_scale = 1.f;
  FeatureMap outer_skip;
  float outer_scale = 1.f;
  // int8 (CpuKernels::dense_block_int8): the convs' weights for codes, instead of `weights`. The concatenation is
  // held as u8 codes, each part in its own: codes[0] of `in`, codes[k + 1] of conv k's output. Conv k's weights
  // fold in the scale of the part each input channel belongs to, and its scale and bias the parts' zero points
  // and conv k's output code scale (or, for the last, skip_scale); its input channels are padded with zero
  // weights to a multiple of 64 (see pack_dense_conv_int8).
  const PackedConv3x3Int8* weights_int8[kMaxDenseConvs] = {};
  QuantCodes codes[kMaxDenseConvs] = {};
};

// A float32 map quantized into codes (where a layer that is not an int8 conv feeds one).
struct QuantizeParams {
  FeatureMap in;
  FeatureMapU8 out_u8;    // same geometry; its c channels are coded (`in` may be a range of a wider buffer)
  FeatureMapU16 out_u16;  // or u16 codes (quant.code_max > 255); one of out_u8, out_u16 is set
  QuantCodes quant;
};

// Per-call execution settings shared by the kernels.
struct ExecContext {
  int threads = 1;
  float* scratch = nullptr;       // threads * scratch_floats_per_thread floats, 64-byte aligned
  size_t scratch_floats_per_thread = 0;
};

}  // namespace srgan_fast
