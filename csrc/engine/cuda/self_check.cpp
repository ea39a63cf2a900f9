// The engine's safety net: the fp32 reference network built from the reference kernels, and the check that
// the fast kernels agree with it on a random tile before a tile shape is used.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>

#include "cuda_engine.h"

namespace srgan_fast::cuda {
namespace {

// The largest tile checked at its own size; bigger shapes are checked on a smaller odd-sized tile, which runs
// the same kernels through the same border and partial-block code paths.
constexpr int kMaxCheckedPixels = 128 * 128;
constexpr int kFallbackCheckHeight = 61, kFallbackCheckWidth = 67;

ReferenceConvParams reference_params(const ConvLayer& layer, const float* input, float* output, const float* alpha,
                                     const float* residual, int n, int h, int w) {
  ReferenceConvParams p{};
  p.input = input;
  p.weights = layer.reference.as<float>();
  p.bias = layer.bias.as<float>();
  p.alpha = alpha;
  p.residual = residual;
  p.output = output;
  p.batch = n;
  p.height = h;
  p.width = w;
  p.cin = layer.cin;
  p.cout = layer.cout;
  p.ksize = layer.reference_ksize;
  return p;
}

// Error bounds on the unclamped output, relative to its scale. Storage rounding (2^-11 for fp16, 2^-8 for bf16
// per layer) compounds over ~40 layers to rms errors of a few 1e-3 (fp16) and 1e-2 (bf16) of the output scale
// in torch's own runs; the bounds leave several times that, and stay far below the O(1) relative error of a
// wrong index, tap or fragment layout (a reference network with the tail negated gives about 2).
void tolerances(Precision precision, double* max_abs, double* rms) {
  *max_abs = precision == Precision::fp16 ? 0.1 : 0.3;
  *rms = precision == Precision::fp16 ? 0.02 : 0.08;
}


}  // namespace

std::string SelfCheckReport::describe() const {
  char text[400];
  std::snprintf(text, sizeof text,
                "%dx%d random tile: max |fast - reference| %.3g (tolerance %.3g), rms %.3g (tolerance %.3g), "
                "reference max |y| %.3g, rms %.3g",
                height, width, max_abs_error, max_abs_tolerance, rms_error, rms_tolerance, max_abs_reference,
                rms_reference);
  return text;
}

// fp32 throughout: input conversion, then the description's layers one by one as torch runs them (conv, then
// pixel shuffle and activation, then the residual; the image skip at the end), each output in a buffer of its
// own: nothing of the step plan (its buffers, in-place adds, fusions, the image store) is shared with the fast
// path, so the check covers them.
void CudaEngine::enqueue_reference(const void* input, InputKind in, float* output, int n, int h, int w,
                                   cudaStream_t stream) const {
  const CudaNetwork& net = reference_network();
  const size_t pixels = size_t(n) * h * w;
  DeviceBuffer image(pixels * 3 * sizeof(float));
  reference_input_to_float(input, in, image.as<float>(), int64_t(pixels) * 3, stream);
  std::vector<DeviceBuffer> outputs, wide;  // every layer's output, and the pre-shuffle maps; freed on return
  for (const ConvLayer& layer : net.layers) {
    const int height = layer.level * h, width = layer.level * w, s = layer.shuffle;
    const size_t values = size_t(n) * height * width * layer.cout;
    const float* source = layer.source < 0 ? image.as<float>() : outputs[layer.source].as<float>();
    const float* residual = layer.residual < 0 ? nullptr : outputs[layer.residual].as<float>();
    outputs.emplace_back(values * sizeof(float));
    if (s == 1) {
      reference_conv2d(reference_params(layer, source, outputs.back().as<float>(), layer.alpha_or_null(), residual,
                                        n, height, width), stream);
      continue;
    }
    if (residual != nullptr) throw std::invalid_argument("CUDA reference: a residual after a pixel shuffle");
    wide.emplace_back(values * sizeof(float));
    reference_conv2d(reference_params(layer, source, wide.back().as<float>(), nullptr, nullptr, n, height, width),
                     stream);
    reference_pixel_shuffle_prelu(wide.back().as<float>(), layer.alpha_or_null(), outputs.back().as<float>(), n,
                                  height, width, layer.cout / (s * s), s, stream);
  }
  float* result = outputs.back().as<float>();  // [n, scale h, scale w, 3]
  reference_add_image_skip(image.as<float>(), net.image_skip, result, n, h, w, net.scale, stream);
  CUDA_CHECK(cudaMemcpyAsync(output, result, pixels * net.scale * net.scale * 3 * sizeof(float),
                             cudaMemcpyDeviceToDevice, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));  // the temporaries are freed on return
}

std::vector<float> CudaEngine::run_reference(const void* tiles, int n, int h, int w, InputKind in) {
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(options_.device);
  const size_t in_bytes = size_t(n) * h * w * 3 * element_size(in);
  const size_t out_count = size_t(n) * scale() * scale() * h * w * 3;
  DeviceBuffer input = upload_to_device(tiles, in_bytes), output(out_count * sizeof(float));
  enqueue_reference(input.get(), in, output.as<float>(), n, h, w, compute_->get());
  std::vector<float> result(out_count);
  CUDA_CHECK(cudaMemcpy(result.data(), output.get(), out_count * sizeof(float), cudaMemcpyDeviceToHost));
  return result;
}

SelfCheckReport CudaEngine::self_check_locked(int h, int w) {
  std::mt19937 generator(0x5eed + 7919 * h + w);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> tile(size_t(h) * w * 3);
  for (float& v : tile) v = uniform(generator);

  // The same kernels and buffer layout as a run (launched eagerly), float32 in and unclamped float32 out.
  auto plan = make_plan(1, h, w, InputKind::kFloat32, OutputKind::kFloat32Unclamped, /*with_staging=*/false);
  Slot& slot = plan->slots[0];
  copy_host_to_device(slot.in.get(), tile.data(), tile.size() * sizeof(float));
  enqueue_forward(*plan, slot.in.get(), slot.out.get(), compute_->get());
  const size_t out_count = size_t(scale()) * scale() * h * w * 3;
  DeviceBuffer reference(out_count * sizeof(float));
  enqueue_reference(slot.in.get(), InputKind::kFloat32, reference.as<float>(), 1, h, w, compute_->get());
  std::vector<float> fast(out_count), expected(out_count);
  CUDA_CHECK(cudaMemcpy(fast.data(), slot.out.get(), out_count * sizeof(float), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(expected.data(), reference.get(), out_count * sizeof(float), cudaMemcpyDeviceToHost));

  SelfCheckReport report;
  report.height = h;
  report.width = w;
  double sum_error = 0, sum_reference = 0;
  bool finite = true;
  for (size_t i = 0; i < out_count; ++i) {
    const double error = std::fabs(double(fast[i]) - expected[i]);
    finite = finite && std::isfinite(fast[i]);
    report.max_abs_error = std::max(report.max_abs_error, error);
    report.max_abs_reference = std::max(report.max_abs_reference, std::fabs(double(expected[i])));
    sum_error += error * error;
    sum_reference += double(expected[i]) * expected[i];
  }
  report.rms_error = std::sqrt(sum_error / out_count);
  report.rms_reference = std::sqrt(sum_reference / out_count);
  double max_abs_relative, rms_relative;
  tolerances(precision_, &max_abs_relative, &rms_relative);
  report.max_abs_tolerance = max_abs_relative * std::max(1.0, report.max_abs_reference);
  report.rms_tolerance = rms_relative * std::max(0.1, report.rms_reference);
  report.passed =
      finite && report.max_abs_error <= report.max_abs_tolerance && report.rms_error <= report.rms_tolerance;
  return report;
}

SelfCheckReport CudaEngine::self_check(int h, int w) {
  if (h <= 0 || w <= 0)
    throw std::invalid_argument("self_check: expected a positive tile size, got " + std::to_string(h) + "x" +
                                std::to_string(w));
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(options_.device);
  return self_check_locked(h, w);
}

void CudaEngine::ensure_checked(int h, int w) {
  if (int64_t(h) * w > kMaxCheckedPixels) {
    h = std::min(h, kFallbackCheckHeight);
    w = std::min(w, kFallbackCheckWidth);
  }
  auto found = checks_.find({h, w});
  if (found == checks_.end()) found = checks_.emplace(std::make_pair(h, w), self_check_locked(h, w)).first;
  if (!found->second.passed)
    throw std::runtime_error(std::string("CUDA engine self-check failed on ") + device_name_ + " (" +
                             precision_name(precision_) + "): the fast kernels disagree with the fp32 reference "
                             "kernels on a " + found->second.describe() + "; refusing to run, use another backend");
}

}  // namespace srgan_fast::cuda
