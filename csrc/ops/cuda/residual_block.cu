// The fused residual block on tensor cores (see residual_block.h for the contract).
//
// One CTA (4 warps) owns an 8 x 16 output block of one image and all C channels:
//   1. stage the 12 x 20 input block, all C channels, zero outside the image (conv1's padding);
//   2. conv1 as implicit GEMM over the 10 x 18 = 180 intermediate pixels, taken 16 at a time in row-major
//      order (12 m16 tiles, 3 per warp; the last tile's 12 surplus rows compute and are dropped), weights
//      staged 16 input channels at a time; epilogue bias + PReLU, and zero for intermediate pixels outside
//      the image (conv2's padding), rounded to storage into shared memory;
//   3. conv2 over the intermediate exactly like conv_mma's 3x3 (2 output rows per warp), epilogue bias +
//      the skip read from the staged input block, stored once.
// The K order (16-channel chunks outer, taps inner) equals conv_mma's, so results match the two-kernel path.
#include <stdexcept>
#include <string>

#include "cuda_check.h"
#include "mma_tiles.cuh"
#include "residual_block.h"
#include "storage_types.cuh"

namespace srgan_fast::cuda {
namespace {

constexpr int kTileH = 8, kTileW = 16, kThreads = 128;
constexpr int kInH = kTileH + 4, kInW = kTileW + 4;    // input block: two convs' worth of halo
constexpr int kMidH = kTileH + 2, kMidW = kTileW + 2;  // intermediate block: one conv's halo
constexpr int kMidPixels = kMidH * kMidW;
constexpr int kMidTiles = (kMidPixels + 15) / 16;
constexpr int kMidTilesPerWarp = kMidTiles / 4;
static_assert(kMidTiles % 4 == 0, "the intermediate's m16 tiles must split evenly over the 4 warps");

template <int C>
// +8 elements: the 8 rows an ldmatrix phase reads fall in distinct banks for C = 16, 32, 64.
__host__ __device__ constexpr int row_stride() { return C + 8; }

template <int C>
constexpr size_t shared_bytes() {
  return (size_t(kInH * kInW + kMidPixels) * row_stride<C>() + size_t(9) * C * kChunkStride) * 2;
}

template <typename T, int C>
__global__ void __launch_bounds__(kThreads) residual_block_kernel(const ResidualBlockParams p) {
  constexpr int kStride = row_stride<C>(), kNTiles = C / 8;
  extern __shared__ uint4 shared_raw[];
  T* s_in = reinterpret_cast<T*>(shared_raw);  // [kInH * kInW][kStride]
  T* s_mid = s_in + kInH * kInW * kStride;     // [kMidPixels][kStride]
  T* s_w = s_mid + kMidPixels * kStride;       // [9 * C][kChunkStride]

  const int b = blockIdx.z, y0 = blockIdx.y * kTileH, x0 = blockIdx.x * kTileW;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const T* input = static_cast<const T*>(p.input);

  // 1. Input block, all channels, as 16-byte vectors of 8 channels.
  for (int i = threadIdx.x; i < kInH * kInW * (C / 8); i += kThreads) {
    const int pixel = i / (C / 8), vector = i % (C / 8);
    const int gy = y0 - 2 + pixel / kInW, gx = x0 - 2 + pixel % kInW;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (gy >= 0 && gy < p.height && gx >= 0 && gx < p.width)
      v = *reinterpret_cast<const uint4*>(input + ((int64_t(b) * p.height + gy) * p.width + gx) * C + vector * 8);
    *reinterpret_cast<uint4*>(s_in + pixel * kStride + vector * 8) = v;
  }

  // 2. conv1 over the intermediate block. This lane's ldmatrix row of each of its tiles, as an input-block
  // pixel index before the tap shift; surplus rows of the last tile alias the last pixel and are never stored.
  int a_pixel[kMidTilesPerWarp];
#pragma unroll
  for (int mt = 0; mt < kMidTilesPerWarp; ++mt) {
    const int m = min((warp * kMidTilesPerWarp + mt) * 16 + a_fragment_row(lane), kMidPixels - 1);
    a_pixel[mt] = (m / kMidW) * kInW + m % kMidW;
  }
  const int a_column = a_fragment_column(lane);
  float acc1[kMidTilesPerWarp][kNTiles][4] = {};
  for (int c0 = 0; c0 < C; c0 += kChunk) {
    __syncthreads();  // the input block is staged / the previous weight chunk is no longer read
    stage_weight_chunk<T, 9, C, kThreads>(static_cast<const T*>(p.weights1), C, 0, c0, s_w);
    __syncthreads();
#pragma unroll
    for (int tap = 0; tap < 9; ++tap) {
      const int shift = (tap / 3) * kInW + tap % 3;
      uint32_t a[kMidTilesPerWarp][4];
#pragma unroll
      for (int mt = 0; mt < kMidTilesPerWarp; ++mt)
        ldmatrix_x4(a[mt], s_in + (a_pixel[mt] + shift) * kStride + c0 + a_column);
      multiply_tiles<T, C, kMidTilesPerWarp>(acc1, a, s_w, tap, lane);
    }
  }
#pragma unroll
  for (int mt = 0; mt < kMidTilesPerWarp; ++mt)
#pragma unroll
    for (int ni = 0; ni < kNTiles; ++ni)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int m = (warp * kMidTilesPerWarp + mt) * 16 + g + 8 * (r >> 1), n = ni * 8 + 2 * t + (r & 1);
        if (m >= kMidPixels) continue;
        const int gy = y0 - 1 + m / kMidW, gx = x0 - 1 + m % kMidW;
        const bool inside = gy >= 0 && gy < p.height && gx >= 0 && gx < p.width;
        const float v = inside ? prelu(acc1[mt][ni][r] + p.bias1[n], p.alpha1, n) : 0.0f;
        s_mid[m * kStride + n] = StorageOps<T>::from_float(v);
      }

  // 3. conv2 over the intermediate, 2 output rows per warp, then bias + skip.
  float acc2[2][kNTiles][4] = {};
  const T* lane_row = s_mid + a_fragment_row(lane) * kStride + a_column;
  for (int c0 = 0; c0 < C; c0 += kChunk) {
    __syncthreads();  // the intermediate is complete / the previous weight chunk is no longer read
    stage_weight_chunk<T, 9, C, kThreads>(static_cast<const T*>(p.weights2), C, 0, c0, s_w);
    __syncthreads();
#pragma unroll
    for (int tap = 0; tap < 9; ++tap) {
      const int ky = tap / 3, kx = tap % 3;
      uint32_t a[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) ldmatrix_x4(a[mi], lane_row + ((warp * 2 + mi + ky) * kMidW + kx) * kStride + c0);
      multiply_tiles<T, C, 2>(acc2, a, s_w, tap, lane);
    }
  }
  T* output = static_cast<T*>(p.output);
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < kNTiles; ++ni)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int ly = warp * 2 + mi, lx = g + 8 * (r >> 1), n = ni * 8 + 2 * t + (r & 1);
        const int y = y0 + ly, x = x0 + lx;
        if (y >= p.height || x >= p.width) continue;
        const float skip = StorageOps<T>::to_float(s_in[((ly + 2) * kInW + lx + 2) * kStride + n]);
        const float v = acc2[mi][ni][r] + p.bias2[n] + skip;
        output[((int64_t(b) * p.height + y) * p.width + x) * C + n] = StorageOps<T>::from_float(v);
      }
}

template <typename T, int C>
void launch(const ResidualBlockParams& p, cudaStream_t stream) {
  constexpr size_t kShared = shared_bytes<C>();
  auto kernel = residual_block_kernel<T, C>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kShared)));
  const int64_t grid_y = (int64_t(p.height) + kTileH - 1) / kTileH;
  if (grid_y > 65535 || p.batch > 65535)
    throw std::invalid_argument("residual_block: height " + std::to_string(p.height) + " or batch " +
                                std::to_string(p.batch) + " exceeds the launch grid (at most " +
                                std::to_string(65535 * kTileH) + " rows, 65535 tiles)");
  const dim3 grid((p.width + kTileW - 1) / kTileW, unsigned(grid_y), unsigned(p.batch));
  kernel<<<grid, kThreads, kShared, stream>>>(p);
  CUDA_CHECK_LAUNCH("residual_block_kernel");
}

template <typename T>
void dispatch(const ResidualBlockParams& p, cudaStream_t stream) {
  switch (p.channels) {
    case 16: return launch<T, 16>(p, stream);
    case 32: return launch<T, 32>(p, stream);
    case 64: return launch<T, 64>(p, stream);
  }
}

}  // namespace

bool residual_block_fused_supports(int channels) { return channels == 16 || channels == 32 || channels == 64; }

void residual_block_fused(const ResidualBlockParams& p, Precision precision, cudaStream_t stream) {
  const auto fail = [](const std::string& message) { throw std::invalid_argument("residual_block_fused: " + message); };
  if (!residual_block_fused_supports(p.channels))
    fail("channels must be 16, 32 or 64, got " + std::to_string(p.channels));
  if (p.batch <= 0 || p.height <= 0 || p.width <= 0 || p.batch > 65535)
    fail("need 0 < batch <= 65535 and positive height, width, got " + std::to_string(p.batch) + ", " +
         std::to_string(p.height) + ", " + std::to_string(p.width));
  if (!p.input || !p.weights1 || !p.bias1 || !p.alpha1 || !p.weights2 || !p.bias2 || !p.output)
    fail("every pointer must be set");
  for (const void* pointer : {p.input, p.weights1, p.weights2})
    if (reinterpret_cast<uintptr_t>(pointer) % 16 != 0) fail("input and weights must be 16-byte aligned");
  if (p.input == p.output) fail("output must not be the input (other blocks still read it)");
  if (precision == Precision::fp16) return dispatch<__half>(p, stream);
  return dispatch<__nv_bfloat16>(p, stream);
}

}  // namespace srgan_fast::cuda
