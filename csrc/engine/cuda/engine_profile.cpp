// Timing instrumentation for tuning on a GPU: the whole forward and each layer, with CUDA events.
#include <stdexcept>

#include "cuda_engine.h"

namespace srgan_fast::cuda {
namespace {

double elapsed_ms(const Event& start, const Event& stop) {
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
  return ms;
}

}  // namespace

ProfileReport CudaEngine::profile(int n, int h, int w, int repeats) {
  if (n <= 0 || h <= 0 || w <= 0 || repeats <= 0)
    throw std::invalid_argument("profile: expected positive n, h, w and repeats");
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(options_.device);
  ensure_checked(h, w);
  Plan& plan = plan_for(n, h, w, InputKind::kUint8, OutputKind::kUint8);
  const Slot& slot = plan.slots[0];
  cudaStream_t stream = compute_->get();
  ProfileReport report;
  report.n = n;
  report.h = h;
  report.w = w;

  launch(plan, slot, stream);  // warm-up
  Event start(cudaEventDefault), stop(cudaEventDefault);
  CUDA_CHECK(cudaEventRecord(start.get(), stream));
  for (int r = 0; r < repeats; ++r) launch(plan, slot, stream);
  CUDA_CHECK(cudaEventRecord(stop.get(), stream));
  CUDA_CHECK(cudaEventSynchronize(stop.get()));
  report.forward_ms = elapsed_ms(start, stop) / repeats;

  // Per layer: eager launches with an event after each; the first repeat also learns names and flops.
  std::vector<std::unique_ptr<Event>> marks;
  for (int r = 0; r < repeats; ++r) {
    Event begin(cudaEventDefault);
    CUDA_CHECK(cudaEventRecord(begin.get(), stream));
    size_t index = 0;
    enqueue_forward(plan, slot.in.get(), slot.out.get(), stream, [&](const std::string& name, double flops) {
      if (r == 0) {
        report.layers.push_back({name, 0.0, flops});
        marks.push_back(std::make_unique<Event>(cudaEventDefault));
      }
      CUDA_CHECK(cudaEventRecord(marks[index++]->get(), stream));
    });
    CUDA_CHECK(cudaEventSynchronize(marks.back()->get()));
    for (size_t i = 0; i < marks.size(); ++i)
      report.layers[i].ms += elapsed_ms(i == 0 ? begin : *marks[i - 1], *marks[i]) / repeats;
  }
  for (const LayerTiming& layer : report.layers) report.forward_flops += layer.flops;
  return report;
}

}  // namespace srgan_fast::cuda
