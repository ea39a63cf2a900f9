#include "engine/model_weights.h"

#include <stdexcept>

namespace srgan_fast {
namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// "a, b, c (+4 more)": a list short enough for a one-line message.
std::string first_few(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < 3; ++i) s += (i ? ", " : "") + items[i];
  if (items.size() > 3) s += " (+" + std::to_string(items.size() - 3) + " more)";
  return s;
}

}  // namespace

std::map<std::string, std::vector<int64_t>> expected_tensor_shapes(int num_blocks, int channels) {
  const int64_t c = channels;
  std::map<std::string, std::vector<int64_t>> s = {
      {"head.weight", {c, 3, 9, 9}}, {"head.bias", {c}}, {"head_prelu.weight", {c}},
      {"trunk_conv.weight", {c, c, 3, 3}}, {"trunk_conv.bias", {c}},
      {"tail.weight", {3, c, 9, 9}}, {"tail.bias", {3}}};
  for (int i = 0; i < num_blocks; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    s[b + "conv1.weight"] = {c, c, 3, 3};
    s[b + "conv1.bias"] = {c};
    s[b + "conv2.weight"] = {c, c, 3, 3};
    s[b + "conv2.bias"] = {c};
    s[b + "prelu.weight"] = {c};
  }
  for (int j = 0; j < 2; ++j) {
    const std::string u = "upsample." + std::to_string(j) + ".";
    s[u + "conv.weight"] = {4 * c, c, 3, 3};
    s[u + "conv.bias"] = {4 * c};
    s[u + "prelu.weight"] = {c};
  }
  return s;
}

void validate_generator_tensors(const TensorMap& tensors, int num_blocks, int channels) {
  if (num_blocks < 0 || channels < 1)
    throw std::invalid_argument("expected num_blocks >= 0 and channels >= 1, got num_blocks=" +
                                std::to_string(num_blocks) + ", channels=" + std::to_string(channels));
  const auto expected = expected_tensor_shapes(num_blocks, channels);
  std::vector<std::string> missing, unexpected, wrong;
  for (const auto& [name, shape] : expected) {
    auto it = tensors.find(name);
    if (it == tensors.end()) missing.push_back(name);
    else if (it->second.shape != shape)
      wrong.push_back(name + " " + shape_str(it->second.shape) + " != " + shape_str(shape));
  }
  for (const auto& [name, t] : tensors)
    if (!expected.count(name)) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !wrong.empty())
    throw std::invalid_argument("weights do not match a generator with num_blocks=" + std::to_string(num_blocks) +
                                ", channels=" + std::to_string(channels) + ": missing [" + first_few(missing) +
                                "], unexpected [" + first_few(unexpected) + "], wrong shape [" + first_few(wrong) +
                                "]");
}

ConvTensors conv_tensors(const TensorMap& tensors, const std::string& prefix, const std::string& prelu) {
  const Tensor& w = tensors.at(prefix + ".weight");
  ConvTensors t;
  t.cout = int(w.shape[0]), t.cin = int(w.shape[1]), t.k = int(w.shape[2]);
  t.weight = w.data;
  t.bias = tensors.at(prefix + ".bias").data;
  if (!prelu.empty()) t.alpha = tensors.at(prelu).data;
  return t;
}

}  // namespace srgan_fast
