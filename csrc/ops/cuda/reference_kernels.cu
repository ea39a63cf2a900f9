// fp32 reference kernels: one thread per output value, each a direct transcription of one torch op, for
// tests and for the engine's self-check. Slow on purpose; nothing here is tuned.
#include <stdexcept>
#include <string>

#include "conv_params.h"
#include "cuda_check.h"
#include "image_skip.cuh"

namespace srgan_fast::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t count) {
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffff)
    throw std::invalid_argument("reference kernel: " + std::to_string(count) + " values is too many");
  return unsigned(blocks);
}

__global__ void reference_conv2d_kernel(const ReferenceConvParams p) {
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t total = int64_t(p.batch) * p.height * p.width * p.cout;
  if (index >= total) return;
  const int o = index % p.cout;
  const int x = (index / p.cout) % p.width;
  const int y = (index / (int64_t(p.cout) * p.width)) % p.height;
  const int b = index / (int64_t(p.cout) * p.width * p.height);
  const int radius = p.ksize / 2;
  float acc = p.bias[o];
  for (int ky = 0; ky < p.ksize; ++ky) {
    for (int kx = 0; kx < p.ksize; ++kx) {
      const int iy = y + ky - radius, ix = x + kx - radius;
      if (iy < 0 || iy >= p.height || ix < 0 || ix >= p.width) continue;  // zero padding
      const float* pixel = p.input + ((int64_t(b) * p.height + iy) * p.width + ix) * p.cin;
      for (int i = 0; i < p.cin; ++i)
        acc += pixel[i] * p.weights[((int64_t(o) * p.cin + i) * p.ksize + ky) * p.ksize + kx];
    }
  }
  if (p.alpha != nullptr && acc < 0.0f) acc *= p.alpha[o];
  if (p.residual != nullptr) acc += p.residual[index];
  p.output[index] = acc;
}

// output [N, fH, fW, C] from input [N, H, W, C f^2]: out(c, fy+i, fx+j) = in(c f^2 + i f + j, y, x), then PReLU.
__global__ void reference_pixel_shuffle_prelu_kernel(const float* input, const float* alpha, float* output,
                                                     int batch, int height, int width, int channels, int factor) {
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int out_h = factor * height, out_w = factor * width;
  if (index >= int64_t(batch) * out_h * out_w * channels) return;
  const int c = index % channels;
  const int ox = (index / channels) % out_w;
  const int oy = (index / (int64_t(channels) * out_w)) % out_h;
  const int b = index / (int64_t(channels) * out_w * out_h);
  const int source_channel = (c * factor + oy % factor) * factor + ox % factor;
  float v = input[((int64_t(b) * height + oy / factor) * width + ox / factor) * factor * factor * channels +
                  source_channel];
  if (alpha != nullptr && v < 0.0f) v *= alpha[c];
  output[index] = v;
}

__global__ void reference_add_image_skip_kernel(const float* image, ImageSkip skip, float* output, int batch,
                                                int height, int width, int scale) {
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int out_h = scale * height, out_w = scale * width;
  if (index >= int64_t(batch) * out_h * out_w * 3) return;
  const int c = index % 3;
  const int x = (index / 3) % out_w;
  const int y = (index / (3 * int64_t(out_w))) % out_h;
  const int b = index / (3 * int64_t(out_w) * out_h);
  const float* first = image + int64_t(b) * height * width * 3;
  const auto pixel = [&](int iy, int ix, int channel) { return first[(int64_t(iy) * width + ix) * 3 + channel]; };
  output[index] += upsampled_image(skip, pixel, height, width, scale, y, x, c);
}

__global__ void reference_input_to_float_kernel(const void* input, InputKind kind, float* output, int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  if (kind == InputKind::kUint8) output[i] = static_cast<const uint8_t*>(input)[i] / 255.0f;
  else if (kind == InputKind::kUint16) output[i] = static_cast<const uint16_t*>(input)[i] / 65535.0f;
  else output[i] = static_cast<const float*>(input)[i];
}

__global__ void reference_output_from_float_kernel(const float* input, OutputKind kind, void* output, int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float v = input[i];
  const float clamped = fminf(fmaxf(v, 0.0f), 1.0f);
  if (kind == OutputKind::kUint8) static_cast<uint8_t*>(output)[i] = uint8_t(rintf(clamped * 255.0f));
  else if (kind == OutputKind::kUint16) static_cast<uint16_t*>(output)[i] = uint16_t(rintf(clamped * 65535.0f));
  else if (kind == OutputKind::kFloat32) static_cast<float*>(output)[i] = clamped;
  else static_cast<float*>(output)[i] = v;
}

}  // namespace

void reference_conv2d(const ReferenceConvParams& p, cudaStream_t stream) {
  if (p.ksize % 2 != 1 || p.batch <= 0 || p.height <= 0 || p.width <= 0 || p.cin <= 0 || p.cout <= 0)
    throw std::invalid_argument("reference_conv2d: need an odd ksize and positive sizes");
  const int64_t total = int64_t(p.batch) * p.height * p.width * p.cout;
  reference_conv2d_kernel<<<blocks_for(total), kThreads, 0, stream>>>(p);
  CUDA_CHECK_LAUNCH("reference_conv2d_kernel");
}

void reference_pixel_shuffle_prelu(const float* input, const float* alpha, float* output, int batch, int height,
                                   int width, int channels, int factor, cudaStream_t stream) {
  if (factor < 1) throw std::invalid_argument("reference_pixel_shuffle_prelu: factor must be >= 1");
  const int64_t total = int64_t(batch) * factor * factor * height * width * channels;
  reference_pixel_shuffle_prelu_kernel<<<blocks_for(total), kThreads, 0, stream>>>(input, alpha, output, batch,
                                                                                   height, width, channels, factor);
  CUDA_CHECK_LAUNCH("reference_pixel_shuffle_prelu_kernel");
}

void reference_add_image_skip(const float* image, ImageSkip skip, float* output, int batch, int height, int width,
                              int scale, cudaStream_t stream) {
  if (skip == ImageSkip::none) return;
  const int64_t total = int64_t(batch) * scale * scale * height * width * 3;
  reference_add_image_skip_kernel<<<blocks_for(total), kThreads, 0, stream>>>(image, skip, output, batch, height,
                                                                              width, scale);
  CUDA_CHECK_LAUNCH("reference_add_image_skip_kernel");
}

void reference_input_to_float(const void* input, InputKind kind, float* output, int64_t count, cudaStream_t stream) {
  if (kind == InputKind::kStorage) throw std::invalid_argument("reference_input_to_float: expected an image kind");
  reference_input_to_float_kernel<<<blocks_for(count), kThreads, 0, stream>>>(input, kind, output, count);
  CUDA_CHECK_LAUNCH("reference_input_to_float_kernel");
}

void reference_output_from_float(const float* input, OutputKind kind, void* output, int64_t count,
                                 cudaStream_t stream) {
  if (kind == OutputKind::kStorage || kind == OutputKind::kStorageShuffle2)
    throw std::invalid_argument("reference_output_from_float: expected an image kind");
  reference_output_from_float_kernel<<<blocks_for(count), kThreads, 0, stream>>>(input, kind, output, count);
  CUDA_CHECK_LAUNCH("reference_output_from_float_kernel");
}

}  // namespace srgan_fast::cuda
