#include "cuda_engine.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "ops/cuda/residual_block.h"

namespace srgan_fast::cuda {

size_t element_size(InputKind kind) {
  switch (kind) {
    case InputKind::kUint8: return 1;
    case InputKind::kUint16: return 2;
    case InputKind::kFloat32: return 4;
    case InputKind::kStorage: break;
  }
  throw std::invalid_argument("CUDA engine: the network input must be an image kind (uint8, uint16, float32)");
}

size_t element_size(OutputKind kind) {
  switch (kind) {
    case OutputKind::kUint8: return 1;
    case OutputKind::kUint16: return 2;
    case OutputKind::kFloat32:
    case OutputKind::kFloat32Unclamped: return 4;
    default: break;
  }
  throw std::invalid_argument("CUDA engine: the network output must be an image kind (uint8, uint16, float32)");
}

namespace {

constexpr size_t kStorageBytes = 2;  // fp16 and bf16
constexpr size_t kMaxPlans = 8;      // distinct (batch, h, w, dtype) kept alive; more evicts them all

ConvParams conv_params(const ConvLayer& layer, const void* input, InputKind in_kind, void* output, OutputKind out_kind,
                       const void* residual, int n, int h, int w) {
  ConvParams p{};
  p.input = input;
  p.weights = layer.packed.get();
  p.bias = layer.bias.as<float>();
  p.alpha = layer.alpha_or_null();
  p.residual = residual;
  p.output = output;
  p.batch = n;
  p.height = h;
  p.width = w;
  p.in_channels = in_kind == InputKind::kStorage ? layer.cin_padded : layer.cin;
  p.cin_padded = layer.cin_padded;
  p.cout = layer.cout;
  p.cout_padded = layer.cout_padded;
  p.ksize = layer.ksize;
  p.input_kind = in_kind;
  p.output_kind = out_kind;
  return p;
}

// Steps k, k+1 that form a residual block the fused kernel runs: conv + activation reading X, then conv + X
// reading only that, same channel count in and out, the block's output in another buffer than X (the fused
// kernel reads X's neighbours while writing), and nothing else reading the first conv's map.
std::vector<bool> find_fused_blocks(const CudaNetwork& net, bool enabled) {
  const std::vector<Step>& steps = net.plan.steps;
  std::vector<bool> fused(steps.size(), false);
  if (!enabled) return fused;
  std::vector<int> readers(net.plan.maps.size(), 0);
  for (const Step& s : steps)
    for (int m : {s.source, s.residual})
      if (m >= 0) ++readers[m];
  for (size_t k = 0; k + 1 < steps.size(); ++k) {
    if (k > 0 && fused[k - 1]) continue;  // step k is the second conv of a fused block
    const Step &first = steps[k], &second = steps[k + 1];
    const ConvLayer &a = net.layers[first.layer], &b = net.layers[second.layer];
    const int c = a.cout;
    fused[k] = first.kind == StepKind::conv && second.kind == StepKind::conv && first.source >= 0 &&
               first.residual < 0 && second.source == first.output && second.residual == first.source &&
               readers[first.output] == 1 && a.alpha.bytes() > 0 && b.alpha.bytes() == 0 && a.ksize == 3 &&
               b.ksize == 3 && a.shuffle == 1 && b.shuffle == 1 && a.cin == c && b.cin == c && b.cout == c &&
               residual_block_fused_supports(c) &&
               net.plan.maps[second.output].buffer != net.plan.maps[first.source].buffer;
  }
  return fused;
}

void require_shape(int n, int h, int w) {
  if (n <= 0 || h <= 0 || w <= 0)
    throw std::invalid_argument("CUDA engine: expected a positive batch, height and width, got " + std::to_string(n) +
                                ", " + std::to_string(h) + ", " + std::to_string(w));
}

}  // namespace

CudaEngine::CudaEngine(const NetworkSpec& network, const EngineOptions& options, const NetworkSpec* reference)
    : options_(options), precision_(options.precision) {
  if (precision_ != Precision::fp16 && precision_ != Precision::bf16)
    throw std::invalid_argument(std::string("CUDA engine: precision must be 'fp16' or 'bf16', got '") +
                                precision_name(precision_) + "'");
  int count = 0;
  CUDA_CHECK(cudaGetDeviceCount(&count));
  if (options.device < 0 || options.device >= count)
    throw std::invalid_argument("CUDA engine: device " + std::to_string(options.device) + " requested, " +
                                std::to_string(count) + " CUDA device(s) present");
  if (options.batch_size <= 0)
    throw std::invalid_argument("CUDA engine: batch_size must be positive, got " + std::to_string(options.batch_size));
  cudaDeviceProp properties{};
  CUDA_CHECK(cudaGetDeviceProperties(&properties, options.device));
  device_name_ = properties.name;
  if (properties.major < 8)
    throw std::runtime_error("CUDA engine: needs compute capability 8.0 or newer (mma.sync fp16/bf16 tensor cores); "
                             "device " + std::to_string(options.device) + " (" + device_name_ + ") is " +
                             std::to_string(properties.major) + "." + std::to_string(properties.minor));
  DeviceGuard guard(options.device);
  network_ = std::make_unique<CudaNetwork>(network, precision_, options.fuse_residual_blocks);
  if (reference != nullptr) {
    reference_network_ = std::make_unique<CudaNetwork>(*reference, precision_, false);
    if (reference_network_->scale != network_->scale)
      throw std::invalid_argument("CUDA engine: the reference network must have the engine network's scale");
  }
  fused_with_next_ = find_fused_blocks(*network_, options.fuse_residual_blocks);
  compute_ = std::make_unique<Stream>();
  upload_ = std::make_unique<Stream>();
  download_ = std::make_unique<Stream>();
  caller_ready_ = std::make_unique<Event>();
  done_ = std::make_unique<Event>();
}

CudaEngine::~CudaEngine() {
  try {
    DeviceGuard guard(options_.device);
    cudaDeviceSynchronize();  // nothing may still use the buffers freed below
    plans_.clear();
    network_.reset();
    reference_network_.reset();
    caller_ready_.reset();
    done_.reset();
    compute_.reset();
    upload_.reset();
    download_.reset();
  } catch (...) {
    // A destructor cannot report; the driver reclaims everything when the context goes away.
  }
}

std::unique_ptr<CudaEngine::Plan> CudaEngine::make_plan(int n, int h, int w, InputKind in, OutputKind out,
                                                         bool with_staging) {
  auto plan = std::make_unique<Plan>();
  plan->n = n;
  plan->h = h;
  plan->w = w;
  plan->in = in;
  plan->out = out;
  plan->in_tile_bytes = size_t(h) * w * 3 * element_size(in);
  plan->out_tile_bytes = size_t(scale()) * scale() * h * w * 3 * element_size(out);
  for (const BufferInfo& b : network_->plan.buffers)
    plan->buffers.emplace_back(size_t(n) * b.level * h * b.level * w * b.channels * storage_bytes(b.storage));
  for (int s = 0; s < (with_staging ? 2 : 1); ++s) {
    Slot& slot = plan->slots[s];
    slot.in = DeviceBuffer(n * plan->in_tile_bytes);
    slot.out = DeviceBuffer(n * plan->out_tile_bytes);
    CUDA_CHECK(cudaMemset(slot.in.get(), 0, slot.in.bytes()));
    if (with_staging) {
      slot.host_in = PinnedBuffer(n * plan->in_tile_bytes);
      slot.host_out = PinnedBuffer(n * plan->out_tile_bytes);
    }
  }
  // The memsets ran on the legacy stream, which our non-blocking streams do not wait for.
  CUDA_CHECK(cudaDeviceSynchronize());
  return plan;
}

CudaEngine::Plan& CudaEngine::plan_for(int n, int h, int w, InputKind in, OutputKind out) {
  const PlanKey key{n, h, w, int(in), int(out)};
  const auto found = plans_.find(key);
  if (found != plans_.end()) return *found->second;
  if (plans_.size() >= kMaxPlans) {
    CUDA_CHECK(cudaDeviceSynchronize());
    plans_.clear();
  }
  auto plan = make_plan(n, h, w, in, out, /*with_staging=*/true);
  if (options_.use_graphs) capture_graphs(*plan);
  return *(plans_[key] = std::move(plan));
}

void CudaEngine::capture_graphs(Plan& plan) {
  for (Slot& slot : plan.slots) {
    // One eager run first: kernels get their one-time attributes set outside the capture.
    enqueue_forward(plan, slot.in.get(), slot.out.get(), compute_->get());
    CUDA_CHECK(cudaStreamSynchronize(compute_->get()));
    CUDA_CHECK(cudaStreamBeginCapture(compute_->get(), cudaStreamCaptureModeThreadLocal));
    cudaGraph_t graph = nullptr;
    try {
      enqueue_forward(plan, slot.in.get(), slot.out.get(), compute_->get());
    } catch (...) {
      cudaStreamEndCapture(compute_->get(), &graph);  // leave the stream usable; the error is rethrown
      if (graph != nullptr) cudaGraphDestroy(graph);
      throw;
    }
    CUDA_CHECK(cudaStreamEndCapture(compute_->get(), &graph));
    slot.graph = GraphExec(graph);
  }
}

// The step plan, kernel by kernel: each step one conv_mma (or, where fused, a step and the next one fused
// residual block), then the image store when the last conv writes a float map.
void CudaEngine::enqueue_forward(const Plan& plan, const void* input, void* output, cudaStream_t stream,
                                 const LayerHook& after_layer) const {
  const CudaNetwork& net = *network_;
  const StepPlan& steps = net.plan;
  const int n = plan.n, h = plan.h, w = plan.w;
  const auto map = [&](int m) -> void* { return m < 0 ? nullptr : plan.buffers[steps.maps[m].buffer].get(); };
  for (size_t k = 0; k < steps.steps.size(); ++k) {
    const Step& step = steps.steps[k];
    const ConvLayer& layer = net.layers[step.layer];
    const int height = layer.level * h, width = layer.level * w;
    const double flops = 2.0 * n * height * width * layer.cout * layer.cin * layer.reference_ksize *
                         layer.reference_ksize;
    if (fused_with_next_[k]) {
      const ConvLayer& second = net.layers[steps.steps[k + 1].layer];
      const ResidualBlockParams p{map(step.source), layer.packed.get(), layer.bias.as<float>(), layer.alpha_or_null(),
                                  second.packed.get(), second.bias.as<float>(), map(steps.steps[k + 1].output),
                                  n, height, width, layer.cout};
      residual_block_fused(p, precision_, stream);
      if (after_layer) after_layer(layer.name + " + " + second.name + " (fused)", 2 * flops);
      ++k;
      continue;
    }
    OutputKind out_kind = plan.out;
    if (step.kind != StepKind::tail)
      out_kind = steps.maps[step.output].storage == Storage::f32 ? OutputKind::kFloat32Unclamped
                 : layer.shuffle == 2                            ? OutputKind::kStorageShuffle2
                                                                 : OutputKind::kStorage;
    const bool head = step.kind == StepKind::head;
    conv_mma(conv_params(layer, head ? input : map(step.source), head ? plan.in : InputKind::kStorage,
                         step.kind == StepKind::tail ? output : map(step.output), out_kind, map(step.residual), n,
                         height, width),
             precision_, stream);
    if (after_layer) after_layer(layer.name, flops);
  }
  if (steps.output_shuffle > 0) {
    const ImageStoreParams p{static_cast<const float*>(map(int(steps.maps.size()) - 1)), input, output, n, h, w,
                             net.scale, steps.output_shuffle, net.image_skip, plan.in, plan.out};
    image_store(p, stream);
    if (after_layer) after_layer("image store", 0);
  }
}

void CudaEngine::launch(const Plan& plan, const Slot& slot, cudaStream_t stream) const {
  if (slot.graph) CUDA_CHECK(cudaGraphLaunch(slot.graph.get(), stream));
  else enqueue_forward(plan, slot.in.get(), slot.out.get(), stream);
}

void CudaEngine::run_host(const void* tiles, void* result, int n, int h, int w, InputKind in, OutputKind out) {
  require_shape(n, h, w);
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(options_.device);
  ensure_checked(h, w);
  const int batch = std::min(n, options_.batch_size);
  Plan& plan = plan_for(batch, h, w, in, out);
  // A run_device that returned without waiting may still be reading the slots' inputs; uploads run on
  // another stream, so they start only once the compute stream has drained.
  CUDA_CHECK(cudaEventRecord(done_->get(), compute_->get()));
  CUDA_CHECK(cudaStreamWaitEvent(upload_->get(), done_->get(), 0));
  const int batches = (n + batch - 1) / batch;
  const auto count_of = [&](int i) { return std::min(batch, n - i * batch); };
  const auto finish = [&](int i) {
    const Slot& slot = plan.slots[i % 2];
    CUDA_CHECK(cudaEventSynchronize(slot.downloaded.get()));
    std::memcpy(static_cast<char*>(result) + size_t(i) * batch * plan.out_tile_bytes, slot.host_out.get(),
                count_of(i) * plan.out_tile_bytes);
  };
  for (int i = 0; i < batches; ++i) {
    Slot& slot = plan.slots[i % 2];
    if (i >= 2) finish(i - 2);  // frees this slot: its previous batch is downloaded and copied out
    const size_t in_bytes = count_of(i) * plan.in_tile_bytes, out_bytes = count_of(i) * plan.out_tile_bytes;
    // A short last batch computes stale tiles in the unused positions; they are never copied out.
    std::memcpy(slot.host_in.get(), static_cast<const char*>(tiles) + size_t(i) * batch * plan.in_tile_bytes,
                in_bytes);
    CUDA_CHECK(cudaMemcpyAsync(slot.in.get(), slot.host_in.get(), in_bytes, cudaMemcpyHostToDevice, upload_->get()));
    CUDA_CHECK(cudaEventRecord(slot.uploaded.get(), upload_->get()));
    CUDA_CHECK(cudaStreamWaitEvent(compute_->get(), slot.uploaded.get(), 0));
    launch(plan, slot, compute_->get());
    CUDA_CHECK(cudaEventRecord(slot.computed.get(), compute_->get()));
    CUDA_CHECK(cudaStreamWaitEvent(download_->get(), slot.computed.get(), 0));
    CUDA_CHECK(cudaMemcpyAsync(slot.host_out.get(), slot.out.get(), out_bytes, cudaMemcpyDeviceToHost,
                               download_->get()));
    CUDA_CHECK(cudaEventRecord(slot.downloaded.get(), download_->get()));
  }
  for (int i = std::max(0, batches - 2); i < batches; ++i) finish(i);
}

void CudaEngine::run_device(const void* input, void* output, int n, int h, int w, InputKind in, OutputKind out,
                            cudaStream_t stream) {
  require_shape(n, h, w);
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(options_.device);
  for (const auto& [pointer, what] : {std::pair<const void*, const char*>{input, "input"}, {output, "output"}}) {
    cudaPointerAttributes attributes{};
    CUDA_CHECK(cudaPointerGetAttributes(&attributes, pointer));
    const bool on_device = attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
    if (!on_device || attributes.device != options_.device)
      throw std::invalid_argument(std::string("CUDA engine: the ") + what + " must be device memory on cuda:" +
                                  std::to_string(options_.device) + ", got " +
                                  (on_device ? "memory on cuda:" + std::to_string(attributes.device) : "host memory"));
  }
  ensure_checked(h, w);
  const int batch = std::min(n, options_.batch_size);
  Plan& plan = plan_for(batch, h, w, in, out);
  cudaStream_t compute = compute_->get();
  // compute_ is non-blocking, so it is not ordered after the legacy default stream by itself: a caller that
  // filled the input on stream 0 is waited for explicitly too.
  CUDA_CHECK(cudaEventRecord(caller_ready_->get(), stream != nullptr ? stream : cudaStreamLegacy));
  CUDA_CHECK(cudaStreamWaitEvent(compute, caller_ready_->get(), 0));
  // The graph reads and writes fixed buffers; the caller's tiles are copied in and out around it on the
  // device (a few bytes per pixel, against kilobytes of activation traffic per pixel inside the network).
  const Slot& slot = plan.slots[0];
  for (int i = 0; i * batch < n; ++i) {
    const int count = std::min(batch, n - i * batch);
    CUDA_CHECK(cudaMemcpyAsync(slot.in.get(), static_cast<const char*>(input) + size_t(i) * batch * plan.in_tile_bytes,
                               count * plan.in_tile_bytes, cudaMemcpyDeviceToDevice, compute));
    launch(plan, slot, compute);
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(output) + size_t(i) * batch * plan.out_tile_bytes, slot.out.get(),
                               count * plan.out_tile_bytes, cudaMemcpyDeviceToDevice, compute));
  }
  if (stream != nullptr) {
    CUDA_CHECK(cudaEventRecord(done_->get(), compute));
    CUDA_CHECK(cudaStreamWaitEvent(stream, done_->get(), 0));
  } else {
    CUDA_CHECK(cudaStreamSynchronize(compute));
  }
}

}  // namespace srgan_fast::cuda
