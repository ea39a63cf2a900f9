// Implicit-GEMM KxK convolution on tensor cores, NHWC, fp16/bf16 storage, fp32 accumulation, fused epilogue.
//
// GEMM view: M = output pixels, N = output channels, K = taps x input channels. One CTA computes a
// 16 x 16 block of output pixels (kTileH x kTileW) for NT output channels of one image; 8 warps, each owning
// two output rows (two m16 tiles: 16 consecutive pixels of one row) and all NT channels (NT/8 n8 tiles).
// (16 x 16 rather than 8 x 16: each staged weight chunk serves twice the pixels. On an H200 that took the
// whole 540x960 forward from 20.6 to 18.6 ms although only one such CTA fits per SM; benchmarks/results.)
// K is walked in chunks of 16 input channels: the input halo block (tile + K-1 border, zero outside the
// image = the conv's zero padding) and the weights for those 16 channels are staged in shared memory, then
// every tap is one k16 step of mma.sync.m16n8k16 (A = shifted window of the halo, B = that tap's weights).
//
// Fragment layouts and the shared staging helpers: mma_tiles.cuh.
//
// ldmatrix fragment loads, a two-stage cp.async pipeline for the 3x3 convs and two-channel epilogue stores;
// still padded rows instead of a swizzle and mma.sync rather than wgmma: docs/cuda.md lists the next steps.
#include <stdexcept>
#include <string>

#include "conv_params.h"
#include "cuda_check.h"
#include "mma_tiles.cuh"
#include "storage_types.cuh"

namespace srgan_fast::cuda {
namespace {

constexpr int kTileH = 16;
constexpr int kTileW = 16;
constexpr int kThreads = 256;     // 8 warps x 2 rows = kTileH
constexpr int kPixelStride = kChunkStride;  // staged input pixels are rows of 16 channels, like the weights

// 3x3 convs (the bulk of the network) double-buffer their staging with cp.async: chunk k+1 loads while
// chunk k computes. The 9x9 head and tail keep one stage, which keeps their larger blocks within the
// 99 KiB of shared memory that sm_86/sm_89 allow.
template <int KSIZE>
__host__ __device__ constexpr int stages() { return KSIZE == 3 ? 2 : 1; }

template <int KSIZE, int NT>
__host__ __device__ constexpr int stage_elements() {
  return ((kTileH + KSIZE - 1) * (kTileW + KSIZE - 1) + KSIZE * KSIZE * NT) * kPixelStride;
}

template <int KSIZE, int NT>
constexpr size_t shared_bytes() { return size_t(stages<KSIZE>()) * stage_elements<KSIZE, NT>() * 2; }

template <InputKind IN>
__device__ __forceinline__ float load_raw(const void* input, int64_t index) {
  if constexpr (IN == InputKind::kUint8) return static_cast<const uint8_t*>(input)[index] / 255.0f;
  if constexpr (IN == InputKind::kUint16) return static_cast<const uint16_t*>(input)[index] / 65535.0f;
  return static_cast<const float*>(input)[index];
}

// Stage input channels [c0, c0+16) of the halo block into s_in [halo_h * halo_w][kPixelStride].
template <typename T, int KSIZE, InputKind IN, bool ASYNC>
__device__ void stage_input(const ConvParams& p, T* s_in, int b, int y0, int x0, int c0) {
  constexpr int kHaloH = kTileH + KSIZE - 1, kHaloW = kTileW + KSIZE - 1, kRadius = KSIZE / 2;
  if constexpr (IN == InputKind::kStorage) {
    // 16 channels = two 16-byte vectors per pixel; in_channels == cin_padded is a multiple of 16.
    const T* input = static_cast<const T*>(p.input);
    for (int i = threadIdx.x; i < kHaloH * kHaloW * 2; i += kThreads) {
      const int pixel = i >> 1, half = i & 1;
      const int gy = y0 + pixel / kHaloW - kRadius, gx = x0 + pixel % kHaloW - kRadius;
      const bool inside = gy >= 0 && gy < p.height && gx >= 0 && gx < p.width;
      const T* source = inside ? input + ((int64_t(b) * p.height + gy) * p.width + gx) * p.in_channels + c0 + half * 8
                               : input;  // zero padding: nothing is read
      copy_16<ASYNC>(s_in + pixel * kPixelStride + half * 8, source, inside);
    }
  } else {
    static_assert(!ASYNC, "raw images are converted while staging, which cp.async cannot do");
    // Raw image (head only): per value, converted to [0, 1] in fp32 then rounded to storage once.
    for (int i = threadIdx.x; i < kHaloH * kHaloW * kChunk; i += kThreads) {
      const int pixel = i / kChunk, c = c0 + i % kChunk;
      const int gy = y0 + pixel / kHaloW - kRadius, gx = x0 + pixel % kHaloW - kRadius;
      float v = 0.0f;
      if (c < p.in_channels && gy >= 0 && gy < p.height && gx >= 0 && gx < p.width)
        v = load_raw<IN>(p.input, ((int64_t(b) * p.height + gy) * p.width + gx) * p.in_channels + c);
      s_in[pixel * kPixelStride + i % kChunk] = StorageOps<T>::from_float(v);
    }
  }
}

// Conv channels n and n+1 (n even) of output pixel (b, y, x) into an activation map, two channels per 32-bit
// store: bias, PReLU, then the residual (kStorage), or bias and PReLU into the PixelShuffle(2) position
// (kStorageShuffle2). There the weights are packed sub-pixel-major (pack_conv_weights), so GEMM column n is
// shuffled channel n % C at sub-pixel position n / C (C = cout / 4), and n, n+1 are adjacent channels of one
// output pixel; bias stays in torch's order (channel c at sub-pixel s is torch channel 4c + s).
template <typename T>
__device__ __forceinline__ void store_activation_pair(const ConvParams& p, int b, int y, int x, int n, float v0,
                                                      float v1) {
  const int64_t pixel = (int64_t(b) * p.height + y) * p.width + x;
  if (p.output_kind == OutputKind::kStorageShuffle2) {
    const int group = p.cout >> 2, s = n / group, c = n - s * group;
    v0 = prelu(v0 + p.bias[4 * c + s], p.alpha, c);
    v1 = prelu(v1 + p.bias[4 * c + 4 + s], p.alpha, c + 1);
    const int64_t index =
        ((int64_t(b) * 2 * p.height + 2 * y + (s >> 1)) * 2 * p.width + 2 * x + (s & 1)) * group + c;
    StorageOps<T>::store_pair(static_cast<T*>(p.output) + index, v0, v1);
    return;
  }
  v0 = prelu(v0 + p.bias[n], p.alpha, n);
  v1 = prelu(v1 + p.bias[n + 1], p.alpha, n + 1);
  if (p.residual != nullptr) {
    const float2 r = StorageOps<T>::load_pair(static_cast<const T*>(p.residual) + pixel * p.cout + n);
    v0 += r.x;
    v1 += r.y;
  }
  StorageOps<T>::store_pair(static_cast<T*>(p.output) + pixel * p.cout + n, v0, v1);
}

// One value of output pixel (b, y, x), channel n, as an image (the tail): + bias, clamp, scale, round.
__device__ __forceinline__ void store_image_value(const ConvParams& p, int b, int y, int x, int n, float v) {
  v += p.bias[n];
  const int64_t index = ((int64_t(b) * p.height + y) * p.width + x) * p.cout + n;
  switch (p.output_kind) {
    case OutputKind::kUint8:
      static_cast<uint8_t*>(p.output)[index] = uint8_t(rintf(fminf(fmaxf(v, 0.0f), 1.0f) * 255.0f));
      return;
    case OutputKind::kUint16:
      static_cast<uint16_t*>(p.output)[index] = uint16_t(rintf(fminf(fmaxf(v, 0.0f), 1.0f) * 65535.0f));
      return;
    case OutputKind::kFloat32:
      static_cast<float*>(p.output)[index] = fminf(fmaxf(v, 0.0f), 1.0f);
      return;
    default:  // kFloat32Unclamped (the storage kinds never get here)
      static_cast<float*>(p.output)[index] = v;
      return;
  }
}

// acc += this warp's two output rows x NT channels over one staged chunk (all taps).
template <typename T, int KSIZE, int NT>
__device__ __forceinline__ void multiply_chunk(const T* s_in, const T* s_w, float (&acc)[2][NT / 8][4], int warp,
                                               int lane) {
  constexpr int kHaloW = kTileW + KSIZE - 1;
  // This lane's ldmatrix row: pixel a_fragment_row(lane) of the 16-pixel tile row, at its column offset.
  const T* lane_row = s_in + a_fragment_row(lane) * kPixelStride + a_fragment_column(lane);
#pragma unroll(KSIZE == 3 ? 9 : 3)
  for (int tap = 0; tap < KSIZE * KSIZE; ++tap) {
    const int ky = tap / KSIZE, kx = tap % KSIZE;
    uint32_t a[2][4];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)  // output row warp*2+mi, shifted by the tap within the halo
      ldmatrix_x4(a[mi], lane_row + ((warp * 2 + mi + ky) * kHaloW + kx) * kPixelStride);
    multiply_tiles<T, NT, 2>(acc, a, s_w, tap, lane);
  }
}

// IMAGE_OUT: the epilogue writes an image (the tail), else an activation map; a compile-time choice, so that
// each kernel carries one epilogue (with both, the 64-channel 3x3 kernel's accumulators went to local memory).
template <typename T, int KSIZE, int NT, InputKind IN, bool IMAGE_OUT>
__global__ void __launch_bounds__(kThreads) conv_mma_kernel(const ConvParams p) {
  constexpr int kHaloPixels = (kTileH + KSIZE - 1) * (kTileW + KSIZE - 1), kTaps = KSIZE * KSIZE;
  constexpr bool kAsync = stages<KSIZE>() == 2;
  extern __shared__ uint4 shared_raw[];
  // Stage s: s_in [kHaloPixels][kPixelStride] then s_w [kTaps * NT][kPixelStride], at stage_base(s).
  const auto stage_base = [&](int s) { return reinterpret_cast<T*>(shared_raw) + s * stage_elements<KSIZE, NT>(); };

  const int n_blocks = p.cout_padded / NT;
  const int b = blockIdx.z / n_blocks, n0 = (blockIdx.z % n_blocks) * NT;
  const int y0 = blockIdx.y * kTileH, x0 = blockIdx.x * kTileW;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const auto stage_chunk = [&](int s, int c0) {
    stage_input<T, KSIZE, IN, kAsync>(p, stage_base(s), b, y0, x0, c0);
    stage_weight_chunk<T, kTaps, NT, kThreads, kAsync>(static_cast<const T*>(p.weights), p.cin_padded, n0, c0,
                                                       stage_base(s) + kHaloPixels * kPixelStride);
  };

  float acc[2][NT / 8][4];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < NT / 8; ++ni)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;

  const int chunks = p.cin_padded / kChunk;
  if constexpr (kAsync) {
    stage_chunk(0, 0);
    commit_async_copies();
    for (int k = 0; k < chunks; ++k) {
      if (k + 1 < chunks) {
        // The other stage was last read in iteration k-1, which ended with a barrier.
        stage_chunk((k + 1) & 1, (k + 1) * kChunk);
        commit_async_copies();
        wait_async_copies<1>();  // chunk k has landed (chunk k+1 may still be in flight)
      } else {
        wait_async_copies<0>();
      }
      __syncthreads();
      const T* s_in = stage_base(k & 1);
      multiply_chunk<T, KSIZE, NT>(s_in, s_in + kHaloPixels * kPixelStride, acc, warp, lane);
      __syncthreads();
    }
  } else {
    for (int k = 0; k < chunks; ++k) {
      stage_chunk(0, k * kChunk);
      __syncthreads();
      multiply_chunk<T, KSIZE, NT>(stage_base(0), stage_base(0) + kHaloPixels * kPixelStride, acc, warp, lane);
      __syncthreads();
    }
  }

  // acc[mi][ni][2h + e] is pixel column g + 8h of row mi, channel n0 + 8ni + 2t + e (the C fragment layout).
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
    const int y = y0 + warp * 2 + mi;
#pragma unroll
    for (int ni = 0; ni < NT / 8; ++ni)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int x = x0 + g + h * 8, n = n0 + ni * 8 + 2 * t;
        const float v0 = acc[mi][ni][2 * h], v1 = acc[mi][ni][2 * h + 1];
        if (y < p.height && x < p.width && n < p.cout) {
          if constexpr (IMAGE_OUT) {
            store_image_value(p, b, y, x, n, v0);
            if (n + 1 < p.cout) store_image_value(p, b, y, x, n + 1, v1);
          } else {  // cout is even here (validated), so n + 1 < cout
            store_activation_pair<T>(p, b, y, x, n, v0, v1);
          }
        }
      }
  }
}

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("conv_mma: " + message);
}

template <typename T, int KSIZE, int NT, InputKind IN, bool IMAGE_OUT = false>
void launch(const ConvParams& p, cudaStream_t stream) {
  constexpr size_t kShared = shared_bytes<KSIZE, NT>();
  auto kernel = conv_mma_kernel<T, KSIZE, NT, IN, IMAGE_OUT>;
  // Above 48 KiB dynamic shared memory must be opted into; the attribute is per function, cheap to set,
  // and not a stream operation, so it is also fine while a CUDA graph is being captured.
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kShared)));
  const int64_t grid_z = int64_t(p.batch) * (p.cout_padded / NT);
  require(grid_z <= 65535, "batch x output-channel blocks " + std::to_string(grid_z) + " exceeds 65535");
  const int64_t grid_y = (int64_t(p.height) + kTileH - 1) / kTileH;
  require(grid_y <= 65535, "height " + std::to_string(p.height) + " exceeds " + std::to_string(65535 * kTileH) +
                               " rows (the launch grid's y limit)");
  const dim3 grid((p.width + kTileW - 1) / kTileW, unsigned(grid_y), unsigned(grid_z));
  kernel<<<grid, kThreads, kShared, stream>>>(p);
  CUDA_CHECK_LAUNCH("conv_mma_kernel");
}

template <typename T>
void dispatch(const ConvParams& p, cudaStream_t stream) {
  const bool image_out = p.output_kind != OutputKind::kStorage && p.output_kind != OutputKind::kStorageShuffle2;
  if (p.ksize == 3) {
    require(p.input_kind == InputKind::kStorage, "a 3x3 conv reads storage-type activations only");
    // A last 3x3 conv (MSRResNet's, SRVGGNetCompact's) writes at most 3 x 4^2 channels, one value at a time.
    if (image_out) return launch<T, 3, 16, InputKind::kStorage, true>(p, stream);
    if (p.cout_padded % 64 == 0) return launch<T, 3, 64, InputKind::kStorage>(p, stream);
    if (p.cout_padded % 32 == 0) return launch<T, 3, 32, InputKind::kStorage>(p, stream);
    return launch<T, 3, 16, InputKind::kStorage>(p, stream);
  }
  switch (p.input_kind) {
    case InputKind::kStorage:
      if (p.cout_padded % 16 == 0)
        return image_out ? launch<T, 9, 16, InputKind::kStorage, true>(p, stream)
                         : launch<T, 9, 16, InputKind::kStorage>(p, stream);
      return image_out ? launch<T, 9, 8, InputKind::kStorage, true>(p, stream)
                       : launch<T, 9, 8, InputKind::kStorage>(p, stream);
    case InputKind::kUint8: return launch<T, 9, 16, InputKind::kUint8>(p, stream);
    case InputKind::kUint16: return launch<T, 9, 16, InputKind::kUint16>(p, stream);
    case InputKind::kFloat32: return launch<T, 9, 16, InputKind::kFloat32>(p, stream);
  }
}

bool is_aligned16(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

void validate(const ConvParams& p) {
  require(p.ksize == 3 || p.ksize == 9, "ksize must be 3 or 9, got " + std::to_string(p.ksize));
  require(p.batch > 0 && p.height > 0 && p.width > 0,
          "batch, height, width must be positive, got " + std::to_string(p.batch) + ", " +
              std::to_string(p.height) + ", " + std::to_string(p.width));
  require(p.cin_padded > 0 && p.cin_padded % kChunk == 0,
          "cin_padded must be a positive multiple of 16, got " + std::to_string(p.cin_padded));
  require(p.in_channels > 0 && p.in_channels <= p.cin_padded,
          "in_channels must be in [1, cin_padded], got " + std::to_string(p.in_channels));
  require(p.input_kind != InputKind::kStorage || p.in_channels == p.cin_padded,
          "storage-type input must have in_channels == cin_padded");
  require(p.input_kind == InputKind::kStorage || p.ksize == 9, "raw image input is only fused into the 9x9 head");
  require(p.cout > 0 && p.cout <= p.cout_padded && p.cout_padded % 8 == 0,
          "need 0 < cout <= cout_padded and cout_padded % 8 == 0, got cout " + std::to_string(p.cout) +
              ", cout_padded " + std::to_string(p.cout_padded));
  require(p.ksize == 9 || p.cout_padded % 16 == 0, "a 3x3 conv needs cout_padded % 16 == 0");
  require(p.input_kind == InputKind::kStorage || p.cout_padded % 16 == 0, "the head needs cout_padded % 16 == 0");
  const bool shuffle = p.output_kind == OutputKind::kStorageShuffle2;
  require(!shuffle || (p.cout % 8 == 0 && p.residual == nullptr),
          "the PixelShuffle(2) store needs cout % 8 == 0 and no residual");
  require(p.output_kind != OutputKind::kStorage || p.cout % 2 == 0,
          "activation outputs are stored two channels at a time: cout must be even, got " + std::to_string(p.cout));
  const bool raw_out = p.output_kind != OutputKind::kStorage && !shuffle;
  require(!raw_out || (p.alpha == nullptr && p.residual == nullptr), "image outputs take no PReLU or residual");
  require(!raw_out || p.input_kind == InputKind::kStorage, "image outputs come from a conv over activations only");
  require(p.input != nullptr && p.weights != nullptr && p.bias != nullptr && p.output != nullptr,
          "input, weights, bias and output must be set");
  require(is_aligned16(p.weights) && (p.input_kind != InputKind::kStorage || is_aligned16(p.input)),
          "input and weights must be 16-byte aligned");
}

}  // namespace

void conv_mma(const ConvParams& params, Precision precision, cudaStream_t stream) {
  validate(params);
  if (precision == Precision::fp16) return dispatch<__half>(params, stream);
  return dispatch<__nv_bfloat16>(params, stream);
}

}  // namespace srgan_fast::cuda
