#include "engine/network_spec.h"

#include <stdexcept>

namespace srgan_fast {

ImageSkip parse_image_skip(const std::string& name) {
  if (name.empty() || name == "none") return ImageSkip::none;
  if (name == "nearest") return ImageSkip::nearest;
  if (name == "bilinear") return ImageSkip::bilinear;
  throw std::invalid_argument("unknown image_skip '" + name + "': expected 'none', 'nearest' or 'bilinear'");
}

void validate_network(const NetworkSpec& network) {
  if (network.layers.empty()) throw std::invalid_argument("network: expected at least one layer, got none");
  if (network.scale < 1) throw std::invalid_argument("network: scale must be >= 1, got " + std::to_string(network.scale));
  const auto shape_of = [&](int index) -> std::pair<int, int> {  // (channels, level) of a layer's output
    if (index < 0) return {3, 1};
    return {network.layers[index].result_channels(), network.layers[index].result_level()};
  };
  for (size_t i = 0; i < network.layers.size(); ++i) {
    const LayerSpec& l = network.layers[i];
    const std::string where = "network layer " + std::to_string(i) + " '" + l.name + "': ";
    if (l.source < -1 || l.source >= int(i) || l.residual < -1 || l.residual >= int(i))
      throw std::invalid_argument(where + "source and residual must be earlier layers (or -1: the image)");
    if (l.kernel < 1 || l.kernel % 2 == 0 || l.in_channels < 1 || l.out_channels < 1 || l.shuffle < 1 ||
        l.out_channels % (l.shuffle * l.shuffle) != 0)
      throw std::invalid_argument(where + "expected an odd kernel, positive channels and out_channels divisible "
                                  "by shuffle^2");
    if (shape_of(l.source) != std::pair<int, int>{l.in_channels, l.level})
      throw std::invalid_argument(where + "its input does not have " + std::to_string(l.in_channels) +
                                  " channels at level " + std::to_string(l.level));
    if (l.residual >= 0 && shape_of(l.residual) != std::pair<int, int>{l.result_channels(), l.result_level()})
      throw std::invalid_argument(where + "its residual does not match its output's shape");
    if (l.weight.size() != size_t(l.out_channels) * l.in_channels * l.kernel * l.kernel ||
        l.bias.size() != size_t(l.out_channels) ||
        (!l.slopes.empty() && l.slopes.size() != size_t(l.result_channels())))
      throw std::invalid_argument(where + "weight, bias or slopes have the wrong number of values");
  }
  if (shape_of(int(network.layers.size()) - 1) != std::pair<int, int>{3, network.scale})
    throw std::invalid_argument("network: the last layer must give 3 channels at level " +
                                std::to_string(network.scale));
}

}  // namespace srgan_fast
