// The network as the engines receive it: the description's layer list (srgan_fast/architecture/layers.py),
// with each layer's tensors attached. The engines hold no network knowledge of their own; they map these
// layers onto the fused ops their kernels carry, and refuse (naming the layer) what they cannot run.
#pragma once

#include <string>
#include <vector>

#include "ops/params.h"

namespace srgan_fast {

// One conv and what is fused around it:
//   x = upsample_nearest(concat(sources))                        (one source: no concatenation)
//   y = act(shuffle(conv(x) + bias))
//   y = residual_scale * y + residual;  y = outer_residual_scale * y + outer_residual      (each optional)
struct LayerSpec {
  std::string name;
  int in_channels = 0, out_channels = 0, kernel = 0;
  int level = 1;      // the conv's resolution in multiples of the image's (its sources' times upsample)
  int source = -1;    // the first of `sources`: index of an earlier layer, or -1: the image
  std::vector<int> sources;  // every input, concatenated channel-wise in this order (ESRGAN's dense blocks)
  int upsample = 1;   // nearest-neighbour upsampling of the input before the conv
  int shuffle = 1;    // PixelShuffle factor after the bias
  int residual = -1;  // index of an earlier layer whose output is added last, or -1
  float residual_scale = 1.f;
  int outer_residual = -1;  // a second residual enclosing the first (ESRGAN's residual-in-residual), or -1
  float outer_residual_scale = 1.f;
  std::vector<float> weight;  // [out][in][k][k]
  std::vector<float> bias;    // [out]
  std::vector<float> slopes;  // [out / shuffle^2]: PReLU slopes (fixed slopes arrive filled in); empty: none

  int result_channels() const { return out_channels / (shuffle * shuffle); }
  int result_level() const { return level * shuffle; }
};

struct NetworkSpec {
  int scale = 4;
  // Channels of the input the engine reads: 3 (RGB), or 12 for a model that reads its RGB input
  // pixel-unshuffled by 2 (Real-ESRGAN x2), which the caller unshuffles (its levels then count from there).
  int image_channels = 3;
  ImageSkip image_skip = ImageSkip::none;
  std::vector<LayerSpec> layers;
};

// Throws std::invalid_argument naming the first layer whose wiring or tensor sizes are inconsistent.
void validate_network(const NetworkSpec& network);
ImageSkip parse_image_skip(const std::string& name);

}  // namespace srgan_fast
