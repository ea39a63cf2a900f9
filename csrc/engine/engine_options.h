// How an engine runs: one options struct for the CPU and CUDA engines, each reading the fields of its device.
#pragma once

#include <string>
#include <vector>

#include "ops/params.h"

namespace srgan_fast {

struct EngineOptions {
  Precision precision = Precision::fp32;  // CPU: fp32, bf16 or int8; CUDA: fp16 or bf16
  // CPU engine
  std::string path = "auto";  // kernel path, see cpu::resolve_path
  int threads = 0;            // 0: every core
  // int8: per layer, the codes of its output (from a calibration table); a 3x3 conv reading an output
  // without codes (scale <= 0) runs in floating point.
  std::vector<QuantU8> int8_outputs;
  // CUDA engine
  int device = 0;
  int batch_size = 8;           // tiles per launch (a larger call is split into batches of this size)
  bool use_graphs = true;       // replay a captured CUDA graph per plan instead of launching kernel by kernel
  bool fuse_residual_blocks = false;  // one kernel per residual block (residual_block.h) where the channel
                                      // count allows; off by default: slower than two kernels on an H200
};

}  // namespace srgan_fast
