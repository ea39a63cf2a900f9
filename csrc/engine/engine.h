// The CPU engine: the whole generator on a batch of NHWC tiles, from weights packed once, with feature maps
// and scratch owned here and reused while the tile geometry repeats (no allocation in the steady state).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/model_weights.h"
#include "ops/cpu/dispatch.h"

namespace srgan_fast {

struct EngineOptions {
  Precision precision = Precision::fp32;
  std::string path = "auto";  // see cpu::resolve_path
  int threads = 0;            // 0: every core
};

class CpuEngine {
 public:
  CpuEngine(const TensorMap& tensors, int num_blocks, int channels, const EngineOptions& options);

  // images: [n, h, w, 3] C-contiguous -> out: [n, 4h, 4w, 3] of the same dtype.
  void run(const void* images, DType dtype, int n, int h, int w, void* out);
  // Bytes of feature maps and scratch a batch of this geometry needs.
  size_t workspace_bytes(int n, int h, int w) const;

  Precision precision() const { return precision_; }
  std::string path() const { return cpu::path_name(path_); }
  int threads() const { return threads_; }
  int num_blocks() const { return int(blocks_.size()); }
  int channels() const { return channels_; }

 private:
  void prepare(int n, int h, int w);
  size_t scratch_floats_per_thread(int w) const;
  size_t hr2_floats(int n, int h, int w) const;

  Precision precision_;
  cpu::Path path_;
  const cpu::CpuKernels* kernels_;
  int threads_;
  int channels_;
  int padded_;  // channel stride of every feature map
  HeadOp head_;
  std::vector<ResidualBlockOp> blocks_;
  Conv3x3Op trunk_;
  std::vector<Conv3x3Op> upsample_;
  TailOp tail_;
  // Geometry the buffers are laid out for: capacity in images, and the tile size.
  int capacity_n_ = 0, h_ = 0, w_ = 0;
  // hr2_ holds the tail's input: float32, or bf16 bits at bf16 precision (half the memory and bandwidth).
  AlignedBuffer x_, tmp_, skip_, hr1_, hr2_, scratch_;
  std::mutex mutex_;  // one run at a time: the buffers are shared
};

}  // namespace srgan_fast
