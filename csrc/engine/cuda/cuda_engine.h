// A network description on one GPU: the shared step plan (engine/step_plan.h) walked with the fast tensor-core
// kernels, per-shape buffers and CUDA graphs, pipelined host I/O, and a self-check against the fp32 reference
// kernels (which walk the description itself, layer by layer) before any shape is trusted.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "conv_layers.h"
#include "device_memory.h"
#include "engine/engine_options.h"
#include "ops/cuda/conv_params.h"

namespace srgan_fast::cuda {

using srgan_fast::EngineOptions;

// The fast path against the reference kernels on one random tile (float32 in, unclamped float32 out).
struct SelfCheckReport {
  int height = 0, width = 0;
  double max_abs_error = 0, rms_error = 0, max_abs_reference = 0, rms_reference = 0;
  double max_abs_tolerance = 0, rms_tolerance = 0;
  bool passed = false;
  std::string describe() const;
};

// Where the time goes, for tuning: the whole forward as runs launch it, and each layer launched on its own.
struct LayerTiming {
  std::string name;
  double ms = 0, flops = 0;  // flops: 2 x multiply-adds of the real (unpadded) channels
};
struct ProfileReport {
  int n = 0, h = 0, w = 0;
  double forward_ms = 0, forward_flops = 0;  // forward: graph replay when graphs are on
  std::vector<LayerTiming> layers;           // eager launches, one event pair per layer
};

size_t element_size(InputKind kind);
size_t element_size(OutputKind kind);

class CudaEngine {
 public:
  // Throws std::invalid_argument naming the first layer the CUDA kernels cannot run (plan_cuda_steps).
  // options.precision: fp16 or bf16. reference: the network the self-check holds the fast kernels to, with
  // the same scale (null: `network` itself; another one checks that a changed network is told apart).
  CudaEngine(const NetworkSpec& network, const EngineOptions& options, const NetworkSpec* reference = nullptr);
  ~CudaEngine();

  // tiles: host [n, h, w, 3] of `in`; result: host [n, scale*h, scale*w, 3] of `out`. Copies go through pinned
  // staging on their own streams, two batches in flight (upload i+1 and download i-1 overlap compute i).
  void run_host(const void* tiles, void* result, int n, int h, int w, InputKind in, OutputKind out);

  // input/output: device memory on this engine's device, same layouts as run_host. `stream` orders the
  // work after the caller's stream and makes that stream wait for the result (0: block until done).
  void run_device(const void* input, void* output, int n, int h, int w, InputKind in, OutputKind out,
                  cudaStream_t stream);

  // The fp32 reference network (reference kernels only) on host tiles: [n, scale*h, scale*w, 3] unclamped
  // float32.
  std::vector<float> run_reference(const void* tiles, int n, int h, int w, InputKind in);

  // Runs the self-check on a random h x w tile now (does not throw on disagreement: see `passed`).
  SelfCheckReport self_check(int h, int w);

  // Times `repeats` forwards of n uint8 tiles of h x w (after a warm-up), whole and per layer.
  ProfileReport profile(int n, int h, int w, int repeats);

  std::string device_name() const { return device_name_; }
  int device() const { return options_.device; }
  Precision precision() const { return precision_; }
  int scale() const { return network_->scale; }

 private:
  struct Slot {  // one batch in flight: its I/O buffers, staging and graph
    DeviceBuffer in, out;
    PinnedBuffer host_in, host_out;
    GraphExec graph;
    Event uploaded, computed, downloaded;
  };
  struct Plan {  // everything one (batch, h, w, in, out) needs, allocated once and reused
    int n = 0, h = 0, w = 0;
    InputKind in = InputKind::kUint8;
    OutputKind out = OutputKind::kUint8;
    size_t in_tile_bytes = 0, out_tile_bytes = 0;
    std::vector<DeviceBuffer> buffers;  // the step plan's buffers at this shape
    Slot slots[2];
  };
  using PlanKey = std::tuple<int, int, int, int, int>;

  std::unique_ptr<Plan> make_plan(int n, int h, int w, InputKind in, OutputKind out, bool with_staging);
  Plan& plan_for(int n, int h, int w, InputKind in, OutputKind out);
  void capture_graphs(Plan& plan);
  // Called after each layer's launch with its name and flops (profiling only; null when capturing).
  using LayerHook = std::function<void(const std::string& name, double flops)>;
  void enqueue_forward(const Plan& plan, const void* input, void* output, cudaStream_t stream,
                       const LayerHook& after_layer = nullptr) const;
  void launch(const Plan& plan, const Slot& slot, cudaStream_t stream) const;
  void enqueue_reference(const void* input, InputKind in, float* output, int n, int h, int w,
                         cudaStream_t stream) const;
  SelfCheckReport self_check_locked(int h, int w);
  void ensure_checked(int h, int w);

  EngineOptions options_;
  Precision precision_;
  std::string device_name_;
  std::unique_ptr<CudaNetwork> network_;
  std::unique_ptr<CudaNetwork> reference_network_;  // only when the reference is another network
  const CudaNetwork& reference_network() const { return reference_network_ ? *reference_network_ : *network_; }
  // Per step: it and the next run as one fused residual block (options_.fuse_residual_blocks).
  std::vector<bool> fused_with_next_;
  std::unique_ptr<Stream> compute_, upload_, download_;
  std::unique_ptr<Event> caller_ready_, done_;
  std::map<PlanKey, std::unique_ptr<Plan>> plans_;
  std::map<std::pair<int, int>, SelfCheckReport> checks_;  // by checked tile shape
  std::mutex mutex_;
};

}  // namespace srgan_fast::cuda
