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
    if (index < 0) return {network.image_channels, 1};
    return {network.layers[index].result_channels(), network.layers[index].result_level()};
  };
  for (size_t i = 0; i < network.layers.size(); ++i) {
    const LayerSpec& l = network.layers[i];
    const std::string where = "network layer " + std::to_string(i) + " '" + l.name + "': ";
    const auto earlier = [&](int index) { return index >= -1 && index < int(i); };
    bool wired = !l.sources.empty() && l.sources[0] == l.source && earlier(l.residual) && earlier(l.outer_residual);
    for (int s : l.sources) wired = wired && earlier(s);
    if (!wired)
      throw std::invalid_argument(where + "sources and residuals must be earlier layers (or -1: the image), the "
                                  "first source being `source`");
    if (l.kernel < 1 || l.kernel % 2 == 0 || l.in_channels < 1 || l.out_channels < 1 || l.shuffle < 1 ||
        l.upsample < 1 || l.out_channels % (l.shuffle * l.shuffle) != 0)
      throw std::invalid_argument(where + "expected an odd kernel, positive channels and factors, and "
                                  "out_channels divisible by shuffle^2");
    int channels = 0;
    bool same_level = true;
    for (int s : l.sources) {
      channels += shape_of(s).first;
      same_level = same_level && shape_of(s).second * l.upsample == l.level;
    }
    if (channels != l.in_channels || !same_level)
      throw std::invalid_argument(where + "its input does not have " + std::to_string(l.in_channels) +
                                  " channels at level " + std::to_string(l.level));
    const std::pair<int, int> result{l.result_channels(), l.result_level()};
    if ((l.residual >= 0 && shape_of(l.residual) != result) ||
        (l.outer_residual >= 0 && (l.residual < 0 || shape_of(l.outer_residual) != result)))
      throw std::invalid_argument(where + "its residuals do not match its output's shape (or an outer residual "
                                  "has no inner one)");
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
