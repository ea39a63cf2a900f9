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
  std::vector<QuantCodes> int8_outputs;
  // int8: every map of codes spans [0, int8_code_max]: 255 (u8 maps), or up to what the path's int8 convs sum
  // exactly (cpu::int8_code_max), in u16 maps.
  int int8_code_max = 255;
  // The steps above the input's resolution (from the first upsampling conv on, see CpuEngine::plan_chain) run
  // together in bands of this many rows of the map the first of them reads (a multiple of 12), so that their
  // maps, the network's largest (C channels at 2x and 4x the input's resolution), are never whole in memory;
  // 0: whole maps; -1: the engine's choice (48 rows). The results are the same bits either way.
  int tail_band_rows = -1;
  // Where the path has the fused op (the AMX path at bf16), each residual dense block runs as one op that keeps
  // its concatenation in cache (see CpuEngine::plan_dense_blocks); false: conv by conv. The same bits either way.
  bool fuse_dense_blocks = true;
  // CUDA engine
  int device = 0;
  int batch_size = 8;           // tiles per launch (a larger call is split into batches of this size)
  bool use_graphs = true;       // replay a captured CUDA graph per plan instead of launching kernel by kernel
  bool fuse_residual_blocks = false;  // one kernel per residual block (residual_block.h) where the channel
                                      // count allows; off by default: slower than two kernels on an H200
};

}  // namespace srgan_fast
