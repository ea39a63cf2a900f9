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
  if (precision == Precision::kFloat16) {
    const __half h = __float2half_rn(value);
    std::memcpy(&bits, &h, sizeof bits);
  } else {
    const __nv_bfloat16 b = __float2bfloat16_rn(value);
    std::memcpy(&bits, &b, sizeof bits);
  }
  return bits;
}

const std::vector<float>& require_tensor(const HostTensors& tensors, const std::string& name, size_t count) {
  const auto it = tensors.find(name);
  if (it == tensors.end()) throw std::invalid_argument("CUDA engine: weights lack tensor '" + name + "'");
  if (it->second.size() != count)
    throw std::invalid_argument("CUDA engine: tensor '" + name + "' has " + std::to_string(it->second.size()) +
                                " values, expected " + std::to_string(count));
  return it->second;
}

// `prefix` names the conv ("blocks.0.conv1"); `prelu` names its PReLU weight or is empty.
ConvLayer make_layer(const HostTensors& tensors, const std::string& prefix, const std::string& prelu, int cin,
                     int cout, int ksize, Precision precision, int prelu_channels, bool subpixel_major = false) {
  ConvLayer layer;
  layer.cin = cin;
  layer.cout = cout;
  layer.ksize = ksize;
  layer.cin_padded = round_up(cin, 16);
  // The tail's 3 outputs use one n8 tile; everything else is a multiple of 16 already (channels % 16 == 0).
  layer.cout_padded = round_up(cout, ksize == 9 && cout < 8 ? 8 : 16);
  // Named strings, not temporaries: GCC 13 warns that a reference returned by a call taking a temporary
  // string may dangle (it does not here: the reference is into `tensors`).
  const std::string weight_name = prefix + ".weight", bias_name = prefix + ".bias";
  const auto& weight = require_tensor(tensors, weight_name, size_t(cout) * cin * ksize * ksize);
  const auto& bias = require_tensor(tensors, bias_name, size_t(cout));
  const auto packed =
      pack_conv_weights(weight.data(), cout, cin, ksize, layer.cin_padded, layer.cout_padded, precision,
                        subpixel_major);
  layer.packed = upload_to_device(packed.data(), packed.size() * sizeof(uint16_t));
  layer.bias = upload_to_device(bias.data(), bias.size() * sizeof(float));
  layer.reference = upload_to_device(weight.data(), weight.size() * sizeof(float));
  if (!prelu.empty()) {
    const auto& alpha = require_tensor(tensors, prelu, size_t(prelu_channels));
    layer.alpha = upload_to_device(alpha.data(), alpha.size() * sizeof(float));
  }
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

GeneratorLayers::GeneratorLayers(const HostTensors& tensors, int num_blocks_, int channels_, Precision precision)
    : num_blocks(num_blocks_), channels(channels_) {
  const int c = channels;
  if (c <= 0 || c % 16 != 0)
    throw std::invalid_argument("CUDA engine: channels must be a positive multiple of 16, got " + std::to_string(c));
  if (num_blocks < 0) throw std::invalid_argument("CUDA engine: num_blocks must be >= 0");
  head = make_layer(tensors, "head", "head_prelu.weight", 3, c, 9, precision, c);
  for (int i = 0; i < num_blocks; ++i) {
    const std::string block = "blocks." + std::to_string(i);
    blocks.push_back(make_layer(tensors, block + ".conv1", block + ".prelu.weight", c, c, 3, precision, c));
    blocks.push_back(make_layer(tensors, block + ".conv2", "", c, c, 3, precision, c));
  }
  trunk = make_layer(tensors, "trunk_conv", "", c, c, 3, precision, c);
  for (int j = 0; j < 2; ++j) {
    const std::string stage = "upsample." + std::to_string(j);
    upsample[j] = make_layer(tensors, stage + ".conv", stage + ".prelu.weight", c, 4 * c, 3, precision, c,
                             /*subpixel_major=*/true);
  }
  tail = make_layer(tensors, "tail", "", c, 3, 9, precision, 0);
}

}  // namespace srgan_fast::cuda
