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

ConvLayer make_layer(const LayerSpec& spec, Precision precision, bool subpixel_major = false) {
  ConvLayer layer;
  layer.name = spec.name;
  layer.cin = spec.in_channels;
  layer.cout = spec.out_channels;
  layer.ksize = spec.kernel;
  layer.cin_padded = round_up(layer.cin, 16);
  // The tail's 3 outputs use one n8 tile; everything else is a multiple of 16 already (channels % 16 == 0).
  layer.cout_padded = round_up(layer.cout, layer.ksize == 9 && layer.cout < 8 ? 8 : 16);
  const auto packed = pack_conv_weights(spec.weight.data(), layer.cout, layer.cin, layer.ksize, layer.cin_padded,
                                        layer.cout_padded, precision, subpixel_major);
  layer.packed = upload_to_device(packed.data(), packed.size() * sizeof(uint16_t));
  layer.bias = upload_to_device(spec.bias.data(), spec.bias.size() * sizeof(float));
  layer.reference = upload_to_device(spec.weight.data(), spec.weight.size() * sizeof(float));
  if (!spec.slopes.empty()) layer.alpha = upload_to_device(spec.slopes.data(), spec.slopes.size() * sizeof(float));
  return layer;
}

// Checks that layer `index` is a conv of this form, else says what the CUDA schedule expected there.
void expect_layer(const NetworkSpec& network, int index, const char* role, int kernel, int cin, int cout,
                  int source, int shuffle, bool slopes, int residual) {
  const auto refuse = [&](const std::string& what) {
    throw std::invalid_argument("the CUDA kernels run the SRResNet layout only: expected the " + std::string(role) +
                                " at layer " + std::to_string(index) + what);
  };
  if (index >= int(network.layers.size())) refuse(", but the network has only " +
                                                  std::to_string(network.layers.size()) + " layers");
  const LayerSpec& l = network.layers[index];
  if (l.kernel != kernel || l.in_channels != cin || l.out_channels != cout || l.source != source ||
      l.shuffle != shuffle || l.slopes.empty() == slopes || l.residual != residual)
    refuse(" ('" + l.name + "'): a " + std::to_string(kernel) + "x" + std::to_string(kernel) + " conv " +
           std::to_string(cin) + " -> " + std::to_string(cout) + (shuffle > 1 ? " + PixelShuffle(2)" : "") +
           (slopes ? " + PReLU" : "") + (residual >= 0 ? " + layer " + std::to_string(residual) : "") +
           " reading layer " + std::to_string(source));
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

GeneratorLayers::GeneratorLayers(const NetworkSpec& network, Precision precision) {
  const auto& layers = network.layers;
  const int c = channels = layers.front().out_channels;
  if (c <= 0 || c % 16 != 0)
    throw std::invalid_argument("the CUDA kernels need a channel count that is a multiple of 16, got " +
                                std::to_string(c));
  // head, 2 per block, trunk, log2(scale) upsamplers, tail
  scale = network.scale;
  const int stages = scale == 2 ? 1 : scale == 4 ? 2 : scale == 8 ? 3 : 0;
  num_blocks = (int(layers.size()) - 3 - stages) / 2;
  if (stages == 0 || network.image_skip != ImageSkip::none || num_blocks < 0 ||
      int(layers.size()) != 2 * num_blocks + 3 + stages)
    throw std::invalid_argument("the CUDA kernels run the SRResNet layout only (x2, x4 or x8, no image skip, head + "
                                "residual blocks + trunk + one x2 upsampler per doubling + tail), got " +
                                std::to_string(layers.size()) + " layers at x" + std::to_string(network.scale));
  expect_layer(network, 0, "head", 9, 3, c, -1, 1, true, -1);
  head = make_layer(layers[0], precision);
  int previous = 0;
  for (int i = 0; i < num_blocks; ++i) {
    const int first = 1 + 2 * i;
    expect_layer(network, first, "first conv of a residual block", 3, c, c, previous, 1, true, -1);
    expect_layer(network, first + 1, "second conv of a residual block", 3, c, c, first, 1, false, previous);
    blocks.push_back(make_layer(layers[first], precision));
    blocks.push_back(make_layer(layers[first + 1], precision));
    previous = first + 1;
  }
  const int trunk_index = 1 + 2 * num_blocks;
  expect_layer(network, trunk_index, "trunk conv", 3, c, c, previous, 1, false, 0);
  trunk = make_layer(layers[trunk_index], precision);
  for (int j = 0; j < stages; ++j) {
    expect_layer(network, trunk_index + 1 + j, "upsampler", 3, c, 4 * c, trunk_index + j, 2, true, -1);
    upsample.push_back(make_layer(layers[trunk_index + 1 + j], precision, /*subpixel_major=*/true));
  }
  expect_layer(network, trunk_index + 1 + stages, "tail", 9, c, 3, trunk_index + stages, 1, false, -1);
  tail = make_layer(layers[trunk_index + 1 + stages], precision);
}

}  // namespace srgan_fast::cuda
