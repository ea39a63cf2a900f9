// fp32 reference kernels: one thread per output value, each a direct transcription of one torch op, for
// tests and for the engine's self-check. Slow on purpose; nothing here is tuned.
#include <stdexcept>
#include <string>

#include "conv_params.h"
#include "cuda_check.h"

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

// output [N, 2H, 2W, C] from input [N, H, W, 4C]: out(c, 2y+i, 2x+j) = in(c*4 + i*2 + j, y, x), then PReLU.
__global__ void reference_pixel_shuffle_prelu_kernel(const float* input, const float* alpha, float* output,
                                                     int batch, int height, int width, int channels) {
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int out_h = 2 * height, out_w = 2 * width;
  if (index >= int64_t(batch) * out_h * out_w * channels) return;
  const int c = index % channels;
  const int ox = (index / channels) % out_w;
  const int oy = (index / (int64_t(channels) * out_w)) % out_h;
  const int b = index / (int64_t(channels) * out_w * out_h);
  const int source_channel = c * 4 + (oy % 2) * 2 + (ox % 2);
  float v = input[((int64_t(b) * height + oy / 2) * width + ox / 2) * 4 * channels + source_channel];
  if (v < 0.0f) v *= alpha[c];
  output[index] = v;
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
                                   int width, int channels, cudaStream_t stream) {
  const int64_t total = int64_t(batch) * 4 * height * width * channels;
  reference_pixel_shuffle_prelu_kernel<<<blocks_for(total), kThreads, 0, stream>>>(input, alpha, output, batch,
                                                                                   height, width, channels);
  CUDA_CHECK_LAUNCH("reference_pixel_shuffle_prelu_kernel");
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
