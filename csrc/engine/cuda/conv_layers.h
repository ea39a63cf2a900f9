// The network's convolutions on one GPU: packed fast-path weights and fp32 reference weights, uploaded once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "device_memory.h"
#include "engine/network_spec.h"
#include "engine/step_plan.h"
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
  int level = 1;            // the conv's resolution, in multiples of the input's
  int source = -1, residual = -1, shuffle = 1;  // the description's wiring (the reference walks it)
  int reference_ksize = 0;  // the description's kernel (a 3x3 head is packed centred in a 9x9 one)
  DeviceBuffer packed;      // fast path, see pack_conv_weights
  DeviceBuffer bias;        // [cout] float32
  DeviceBuffer alpha;       // activation slopes float32 ([cout / shuffle^2]); empty: none
  DeviceBuffer reference;   // torch layout float32 [cout][cin][reference_ksize]^2, for the reference kernels

  const float* alpha_or_null() const { return alpha.bytes() ? alpha.as<float>() : nullptr; }
};

// A description on one GPU: the shared step plan (engine/step_plan.h) and each layer's weights, uploaded to
// the current device. Throws std::invalid_argument naming the first layer the CUDA kernels cannot run.
struct CudaNetwork {
  StepPlan plan;
  std::vector<ConvLayer> layers;  // one per description layer
  int scale = 0;
  ImageSkip image_skip = ImageSkip::none;

  CudaNetwork(const NetworkSpec& network, Precision precision, bool fuse_residual_blocks);
};

}  // namespace srgan_fast::cuda
