#include "engine/engine.h"

#include <algorithm>
#include <stdexcept>
#include <thread>

namespace srgan_fast {
namespace {

int default_threads() {
#ifdef _OPENMP
  return std::max(1, omp_get_num_procs());
#else
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

int checked_threads(int threads) {
  if (threads < 0) throw std::invalid_argument("threads must be >= 0 (0: every core), got " + std::to_string(threads));
#ifndef _OPENMP
  threads = 1;  // without OpenMP the kernels run on the calling thread
#endif
  return threads == 0 ? default_threads() : threads;
}

}  // namespace

CpuEngine::CpuEngine(const TensorMap& tensors, int num_blocks, int channels, const EngineOptions& options)
    : precision_((validate_generator_tensors(tensors, num_blocks, channels), options.precision)),
      path_(cpu::resolve_path(options.path, options.precision)),
      kernels_(cpu::kernels_for(path_)),
      threads_(checked_threads(options.threads)),
      channels_(channels),
      padded_(round_up(channels, kChannelAlign)),
      head_(conv_tensors(tensors, "head", "head_prelu.weight")),
      trunk_(conv_tensors(tensors, "trunk_conv"), Epilogue::bias_add_skip, precision_ == Precision::bf16),
      tail_(conv_tensors(tensors, "tail"), precision_ == Precision::bf16) {
  const bool bf16 = precision_ == Precision::bf16;
  blocks_.reserve(num_blocks);
  for (int i = 0; i < num_blocks; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    blocks_.emplace_back(conv_tensors(tensors, b + "conv1", b + "prelu.weight"), conv_tensors(tensors, b + "conv2"),
                         bf16);
  }
  for (int j = 0; j < 2; ++j) {
    const std::string u = "upsample." + std::to_string(j) + ".";
    upsample_.emplace_back(conv_tensors(tensors, u + "conv", u + "prelu.weight"), Epilogue::bias_shuffle_prelu,
                           bf16);
  }
}

size_t CpuEngine::scratch_floats_per_thread(int w) const {
  // Rounded to whole cache lines so that threads never share one.
  const size_t floats = std::max({cpu::conv3x3_scratch_floats(padded_, padded_),
                                  cpu::conv3x3_scratch_floats(padded_, 4 * padded_), cpu::head_scratch_floats(w),
                                  cpu::tail_scratch_floats(padded_)});
  return (floats + 15) / 16 * 16;
}

size_t CpuEngine::hr2_floats(int n, int h, int w) const {
  if (precision_ == Precision::bf16) return (feature_map_floats(n, 4 * h, 4 * w, tail_.bf16_channels()) + 1) / 2;
  return feature_map_floats(n, 4 * h, 4 * w, padded_);
}

size_t CpuEngine::workspace_bytes(int n, int h, int w) const {
  const size_t lr = feature_map_floats(n, h, w, padded_);
  const size_t floats = 3 * lr + feature_map_floats(n, 2 * h, 2 * w, padded_) + hr2_floats(n, h, w) +
                        threads_ * scratch_floats_per_thread(w);
  return floats * sizeof(float);
}

void CpuEngine::prepare(int n, int h, int w) {
  // Same tile size and no more images than before: the layout and its zero halos are still valid.
  if (h == h_ && w == w_ && n <= capacity_n_) return;
  x_.reset_zero(feature_map_floats(n, h, w, padded_));
  tmp_.reset_zero(feature_map_floats(n, h, w, padded_));
  skip_.reset_zero(feature_map_floats(n, h, w, padded_));
  hr1_.reset_zero(feature_map_floats(n, 2 * h, 2 * w, padded_));
  hr2_.reset_zero(hr2_floats(n, h, w));
  scratch_.reset_zero(size_t(threads_) * scratch_floats_per_thread(w));
  capacity_n_ = n, h_ = h, w_ = w;
}

void CpuEngine::run(const void* images, DType dtype, int n, int h, int w, void* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  prepare(n, h, w);
  ExecContext ctx;
  ctx.threads = threads_;
  ctx.scratch = scratch_.data();
  ctx.scratch_floats_per_thread = scratch_floats_per_thread(w);
  const int c = padded_;
  const FeatureMap x = make_feature_map(x_.data(), n, h, w, c);
  const FeatureMap tmp = make_feature_map(tmp_.data(), n, h, w, c);
  const FeatureMap skip = make_feature_map(skip_.data(), n, h, w, c);
  const FeatureMap hr1 = make_feature_map(hr1_.data(), n, 2 * h, 2 * w, c);
  FeatureMap hr2;
  FeatureMapBf16 hr2_bf16;
  if (precision_ == Precision::bf16 && kernels_)
    hr2_bf16 = make_feature_map(reinterpret_cast<uint16_t*>(hr2_.data()), n, 4 * h, 4 * w, tail_.bf16_channels());
  else
    hr2 = make_feature_map(hr2_.data(), n, 4 * h, 4 * w, c);

  head_.run(kernels_, images, dtype, n, h, w, x, skip, ctx);
  for (const ResidualBlockOp& block : blocks_) block.run(kernels_, precision_, x, tmp, ctx);
  trunk_.run(kernels_, precision_, x, skip, skip, ctx);  // skip <- skip + trunk_conv(x)
  upsample_[0].run(kernels_, precision_, skip, FeatureMap{}, hr1, ctx);
  upsample_[1].run(kernels_, precision_, hr1, FeatureMap{}, hr2, ctx, hr2_bf16);
  tail_.run(kernels_, precision_, hr2, hr2_bf16, out, dtype, ctx);
}

}  // namespace srgan_fast
