// The network's convolutions on one GPU: packed fast-path weights and fp32 reference weights, uploaded once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "device_memory.h"
#include "engine/network_spec.h"
#include "ops/cuda/conv_params.h"

namespace srgan_fast::cuda {

// torch [cout, cin, k, k] float32 -> [cout_padded][k*k][cin_padded] fp16/bf16 bits (zeros in the padding),
// round to nearest even: the layout conv_mma reads (16 consecutive input channels per 16-byte vector).
// `subpixel_major` (the upsampler convs, whose output goes through PixelShuffle(2)): row s * cout/4 + c holds
// torch channel 4c + s, so that the shuffled store writes adjacent channels of one output pixel together.
std::vector<uint16_t> pack_conv_weights(const float* weights, int cout, int cin, int ksize, int cin_padded,
                                        int cout_padded, Precision precision, bool subpixel_major = false);

int round_up(int value, int multiple);

// A synchronous upload of `bytes` from host memory into a new device buffer on the current device.
DeviceBuffer upload_to_device(const void* data, size_t bytes);

struct ConvLayer {
  std::string name;  // the description's layer name
  int cin = 0, cout = 0, ksize = 0, cin_padded = 0, cout_padded = 0;
  DeviceBuffer packed;     // fast path, see pack_conv_weights
  DeviceBuffer bias;       // [cout] float32
  DeviceBuffer alpha;      // PReLU slopes float32 ([cout], or [cout/4] after a shuffle); empty: no PReLU
  DeviceBuffer reference;  // torch layout float32, for the reference kernels

  const float* alpha_or_null() const { return alpha.bytes() ? alpha.as<float>() : nullptr; }
};

// A description's layers in the form the CUDA kernels' schedule runs (the SRResNet layout):
//   head      3 -> C, 9x9, PReLU, from the image
//   blocks    pairs: conv1 3x3 + PReLU, conv2 3x3 + the pair's input
//   trunk     3x3 + the head's output
//   upsample  log2(scale) (1 to 3) stages of 3x3 C -> 4C + PixelShuffle(2) + PReLU
//   tail      C -> 3, 9x9, to the image, no image skip
// Other layouts are refused (std::invalid_argument naming the first layer that does not fit); C must be a
// multiple of 16.
struct GeneratorLayers {
  int num_blocks = 0, channels = 0, scale = 0;
  ConvLayer head;
  std::vector<ConvLayer> blocks;  // 2 per residual block
  ConvLayer trunk;
  std::vector<ConvLayer> upsample;  // stage j runs at 2^j x the input's resolution
  ConvLayer tail;

  // Uploads to the current device.
  GeneratorLayers(const NetworkSpec& network, Precision precision);
};

}  // namespace srgan_fast::cuda
