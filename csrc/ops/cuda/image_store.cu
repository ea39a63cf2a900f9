// The image store: the last conv's float32 map pixel-shuffled, plus the input upsampled, clamped, scaled and
// rounded into the output image. A few bytes per output pixel against kilobytes inside the network: one thread
// per output value, coalesced over the output.
#include <stdexcept>
#include <string>

#include "conv_params.h"
#include "cuda_check.h"
#include "image_skip.cuh"

namespace srgan_fast::cuda {
namespace {

constexpr int kThreads = 256;

template <InputKind IN>
__device__ __forceinline__ float image_value(const void* image, int64_t index) {
  if constexpr (IN == InputKind::kUint8) return static_cast<const uint8_t*>(image)[index] / 255.0f;
  if constexpr (IN == InputKind::kUint16) return static_cast<const uint16_t*>(image)[index] / 65535.0f;
  return static_cast<const float*>(image)[index];
}

template <InputKind IN>
__global__ void image_store_kernel(const ImageStoreParams p) {
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int out_h = p.scale * p.height, out_w = p.scale * p.width, s = p.shuffle;
  if (index >= int64_t(p.batch) * out_h * out_w * 3) return;
  const int c = index % 3;
  const int x = (index / 3) % out_w;
  const int y = (index / (3 * int64_t(out_w))) % out_h;
  const int b = index / (3 * int64_t(out_w) * out_h);
  const int feature_w = out_w / s, feature_h = out_h / s;
  float v = p.features[((int64_t(b) * feature_h + y / s) * feature_w + x / s) * 3 * s * s + (c * s + y % s) * s +
                       x % s];
  if (p.skip != ImageSkip::none) {
    const int64_t first = int64_t(b) * p.height * p.width * 3;
    const auto pixel = [&](int iy, int ix, int channel) {
      return image_value<IN>(p.image, first + (int64_t(iy) * p.width + ix) * 3 + channel);
    };
    v += upsampled_image(p.skip, pixel, p.height, p.width, p.scale, y, x, c);
  }
  const float clamped = fminf(fmaxf(v, 0.0f), 1.0f);
  switch (p.output_kind) {
    case OutputKind::kUint8: static_cast<uint8_t*>(p.output)[index] = uint8_t(rintf(clamped * 255.0f)); return;
    case OutputKind::kUint16: static_cast<uint16_t*>(p.output)[index] = uint16_t(rintf(clamped * 65535.0f)); return;
    case OutputKind::kFloat32: static_cast<float*>(p.output)[index] = clamped; return;
    default: static_cast<float*>(p.output)[index] = v; return;  // kFloat32Unclamped
  }
}

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("image_store: " + message);
}

}  // namespace

void image_store(const ImageStoreParams& p, cudaStream_t stream) {
  require(p.batch > 0 && p.height > 0 && p.width > 0 && p.scale > 0 && p.shuffle > 0 && p.scale % p.shuffle == 0,
          "need positive sizes and a shuffle that divides the scale");
  require(p.features != nullptr && p.output != nullptr && (p.skip == ImageSkip::none || p.image != nullptr),
          "features, output (and the image, for a skip) must be set");
  require(p.output_kind != OutputKind::kStorage && p.output_kind != OutputKind::kStorageShuffle2,
          "the output must be an image kind");
  const int64_t total = int64_t(p.batch) * p.scale * p.scale * p.height * p.width * 3;
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  require(blocks <= 0x7fffffff, std::to_string(total) + " output values is too many for one launch");
  switch (p.image_kind) {
    case InputKind::kUint8: image_store_kernel<InputKind::kUint8><<<unsigned(blocks), kThreads, 0, stream>>>(p); break;
    case InputKind::kUint16: image_store_kernel<InputKind::kUint16><<<unsigned(blocks), kThreads, 0, stream>>>(p); break;
    case InputKind::kFloat32: image_store_kernel<InputKind::kFloat32><<<unsigned(blocks), kThreads, 0, stream>>>(p); break;
    case InputKind::kStorage: require(false, "the image must be an image kind (uint8, uint16, float32)");
  }
  CUDA_CHECK_LAUNCH("image_store_kernel");
}

}  // namespace srgan_fast::cuda
