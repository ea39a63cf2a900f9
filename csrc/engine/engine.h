// The CPU engine: a network description (NetworkSpec) on a batch of NHWC tiles, its layers mapped once onto
// the fused ops (head, 3x3 convs with their epilogues, tail, image store), its weights packed once, and its
// feature maps planned once: a map is freed after its last reader and its buffer reused by a later map of the
// same shape, and a residual add writes in place when nothing reads its other input later. The buffers are
// owned here and reused while the tile geometry repeats (no allocation in the steady state).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine_options.h"
#include "engine/network_spec.h"
#include "ops/cpu/dispatch.h"
#include "ops/ops.h"

namespace srgan_fast {


class CpuEngine {
 public:
  // Throws std::invalid_argument naming the first layer the CPU ops cannot run.
  CpuEngine(const NetworkSpec& network, const EngineOptions& options);

  // images: [n, h, w, 3] C-contiguous -> out: [n, scale*h, scale*w, 3] of the same dtype.
  void run(const void* images, DType dtype, int n, int h, int w, void* out);
  // Bytes of feature maps and scratch a batch of this geometry needs.
  size_t workspace_bytes(int n, int h, int w) const;

  Precision precision() const { return precision_; }
  std::string path() const { return cpu::path_name(path_); }
  int threads() const { return threads_; }
  int scale() const { return scale_; }
  int num_layers() const { return int(steps_.size()); }

 private:
  enum class StepKind { head, conv3x3, tail };
  struct Step {
    StepKind kind;
    int op;                  // index into heads_, convs_ or tails_
    int source = -1;         // map index it reads (-1: the image)
    int residual = -1;       // conv3x3 bias_add_skip: map index of the skip
    int output = -1;         // map index it writes (-1: the tail, which writes the image)
  };
  struct MapInfo {           // one layer's output feature map
    int level = 1, channels = 0;  // resolution multiple and channel stride (padded)
    bool bf16 = false;       // stored as bf16 bits (the tail's input at bf16 precision)
    int buffer = -1;
  };
  struct BufferInfo { int level = 1, channels = 0; bool bf16 = false; };

  void add_layer(const NetworkSpec& network, int index);
  void plan_buffers(const NetworkSpec& network);
  void prepare(int n, int h, int w);
  size_t buffer_floats(const BufferInfo& b, int n, int h, int w) const;
  size_t scratch_floats_per_thread(int w) const;
  FeatureMap map_view(int map, int n, int h, int w) const;
  FeatureMapBf16 map_view_bf16(int map, int n, int h, int w) const;

  Precision precision_;
  cpu::Path path_;
  const cpu::CpuKernels* kernels_;
  int threads_;
  int scale_;
  ImageSkip image_skip_;
  int output_shuffle_ = 0;  // >0: the last layer writes a map that image_output stores with this shuffle
  std::vector<HeadOp> heads_;
  std::vector<Conv3x3Op> convs_;
  std::vector<TailOp> tails_;
  std::vector<Step> steps_;
  std::vector<MapInfo> maps_;
  std::vector<BufferInfo> buffer_infos_;
  // Geometry the buffers are laid out for: capacity in images, and the tile size.
  int capacity_n_ = 0, h_ = 0, w_ = 0;
  std::vector<std::unique_ptr<AlignedBuffer>> buffers_;
  AlignedBuffer scratch_;
  std::mutex mutex_;  // one run at a time: the buffers are shared
};

}  // namespace srgan_fast
