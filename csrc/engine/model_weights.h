// The folded generator's tensors by name (the names and shapes of weights.py expected_tensor_shapes),
// validated before anything is packed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ops/ops.h"

namespace srgan_fast {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
using TensorMap = std::map<std::string, Tensor>;

std::map<std::string, std::vector<int64_t>> expected_tensor_shapes(int num_blocks, int channels);
// Throws std::invalid_argument naming missing, unexpected and wrongly shaped tensors.
void validate_generator_tensors(const TensorMap& tensors, int num_blocks, int channels);
// A conv's tensors (prefix + ".weight" / ".bias"), with PReLU slopes from `prelu` (a full name) if given.
ConvTensors conv_tensors(const TensorMap& tensors, const std::string& prefix, const std::string& prelu = "");

}  // namespace srgan_fast
