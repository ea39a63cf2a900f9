#include "conv_layers.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>
#include <stdexcept>

namespace srgan_fast::cuda {

int round_up(int value, int multiple) { return (value + multiple - 1) / multiple * multiple; }

DeviceBuffer upload_to_device(const void* data, size_t bytes) {
  DeviceBuffer buffer(bytes);
  copy_host_to_device(buffer.get(), data, bytes);
  return buffer;
}

namespace {

uint16_t to_storage_bits(float value, Precision precision) {
  uint16_t bits;
  if (precision == Precision::fp16) {
    const __half h = __float2half_rn(value);
    std::memcpy(&bits, &h, sizeof bits);
  } else {
    const __nv_bfloat16 b = __float2bfloat16_rn(value);
    std::memcpy(&bits, &b, sizeof bits);
  }
  return bits;
}

// The head's kernel is packed centred in a 9x9 one (the kernels read a raw image only there); the upsamplers'
// rows sub-pixel-major (kStorageShuffle2); a conv to the image or to the image store's map pads its few output
// channels to one n8 tile (9x9) or one 16-wide block (3x3).
ConvLayer make_layer(const LayerSpec& spec, const Step& step, bool subpixel_major, Precision precision) {
  ConvLayer layer;
  layer.name = spec.name;
  layer.cin = spec.in_channels;
  layer.cout = spec.out_channels;
  layer.level = spec.level;
  layer.source = spec.source, layer.residual = spec.residual, layer.shuffle = spec.shuffle;
  layer.reference_ksize = spec.kernel;
  const bool head = step.kind == StepKind::head;
  layer.ksize = head ? 9 : spec.kernel;
  layer.cin_padded = round_up(layer.cin, 16);
  layer.cout_padded = round_up(layer.cout, layer.ksize == 9 && layer.cout < 8 ? 8 : 16);
  const std::vector<float> weights = head ? centred_in_9x9(spec.weight, spec.out_channels, spec.in_channels,
                                                           spec.kernel)
                                          : spec.weight;
  const auto packed = pack_conv_weights(weights.data(), layer.cout, layer.cin, layer.ksize, layer.cin_padded,
                                        layer.cout_padded, precision, subpixel_major);
  layer.packed = upload_to_device(packed.data(), packed.size() * sizeof(uint16_t));
  layer.bias = upload_to_device(spec.bias.data(), spec.bias.size() * sizeof(float));
  layer.reference = upload_to_device(spec.weight.data(), spec.weight.size() * sizeof(float));
  if (!spec.slopes.empty()) layer.alpha = upload_to_device(spec.slopes.data(), spec.slopes.size() * sizeof(float));
  return layer;
}

}  // namespace

std::vector<uint16_t> pack_conv_weights(const float* weights, int cout, int cin, int ksize, int cin_padded,
                                        int cout_padded, Precision precision, bool subpixel_major) {
  if (cin_padded < cin || cin_padded % 16 != 0 || cout_padded < cout || cout_padded % 8 != 0)
    throw std::invalid_argument("pack_conv_weights: need cin_padded >= cin (multiple of 16) and cout_padded >= "
                                "cout (multiple of 8), got cin " + std::to_string(cin) + " -> " +
                                std::to_string(cin_padded) + ", cout " + std::to_string(cout) + " -> " +
                                std::to_string(cout_padded));
  if (subpixel_major && cout % 4 != 0)
    throw std::invalid_argument("pack_conv_weights: sub-pixel-major packing needs cout % 4 == 0, got " +
                                std::to_string(cout));
  const int taps = ksize * ksize, group = cout / 4;
  std::vector<uint16_t> packed(size_t(cout_padded) * taps * cin_padded, to_storage_bits(0.0f, precision));
  for (int o = 0; o < cout; ++o) {
    const int row = subpixel_major ? (o % 4) * group + o / 4 : o;  // torch channel o = 4c + s -> s * C + c
    for (int i = 0; i < cin; ++i)
      for (int tap = 0; tap < taps; ++tap)
        packed[(size_t(row) * taps + tap) * cin_padded + i] =
            to_storage_bits(weights[(size_t(o) * cin + i) * taps + tap], precision);
  }
  return packed;
}

CudaNetwork::CudaNetwork(const NetworkSpec& network, Precision precision, bool fuse_residual_blocks)
    : plan(plan_cuda_steps(network, precision == Precision::fp16 ? Storage::f16 : Storage::bf16,
                           fuse_residual_blocks)),
      scale(network.scale),
      image_skip(network.image_skip) {
  for (const Step& step : plan.steps) {  // one per layer, in order
    const LayerSpec& spec = network.layers[step.layer];
    const bool shuffled_store = step.output >= 0 && spec.shuffle == 2 && plan.maps[step.output].storage != Storage::f32;
    layers.push_back(make_layer(spec, step, shuffled_store, precision));
  }
}

}  // namespace srgan_fast::cuda
