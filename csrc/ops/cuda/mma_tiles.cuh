// Shared-memory staging and mma.m16n8k16 fragment loads used by every tensor-core kernel (device code only).
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), g = lane / 4, t = lane % 4:
//   A (16x16, row-major): a[0] = (row g,   k 2t..2t+1)  a[1] = (row g+8, k 2t..2t+1)
//                         a[2] = (row g,   k 2t+8..+9)  a[3] = (row g+8, k 2t+8..+9)
//   B (16x8, column):     b[0] = (k 2t..2t+1, col g)    b[1] = (k 2t+8..+9, col g)
//   C (16x8, fp32):       c[0..1] = (row g, col 2t..2t+1)   c[2..3] = (row g+8, col 2t..2t+1)
// In every kernel here k runs over input channels, which are contiguous in NHWC activations and in the packed
// weights, so each fragment register is one aligned 32-bit shared-memory load of two neighbouring channels.
#pragma once

#include <cstdint>

#include "storage_types.cuh"

namespace srgan_fast::cuda {

constexpr int kChunk = 16;        // input channels per K step (one mma k16)
constexpr int kChunkStride = 24;  // elements per staged row of 16 channels: +8 padding puts the 8 rows that a
                                  // fragment load touches in distinct banks

// A fragment from two staged rows (pixels) at element offset `k0` (the chunk's first channel + 2t).
template <typename T>
__device__ __forceinline__ void load_a_fragment(uint32_t (&a)[4], const T* row_g, const T* row_g8) {
  a[0] = *reinterpret_cast<const uint32_t*>(row_g);
  a[1] = *reinterpret_cast<const uint32_t*>(row_g8);
  a[2] = *reinterpret_cast<const uint32_t*>(row_g + 8);
  a[3] = *reinterpret_cast<const uint32_t*>(row_g8 + 8);
}

// B fragment of output channels [8 ni, 8 ni + 8) for one tap from the staged weight chunk.
template <typename T, int NT>
__device__ __forceinline__ void load_b_fragment(uint32_t (&b)[2], const T* s_w, int tap, int ni, int g, int t) {
  const T* column = s_w + (tap * NT + ni * 8 + g) * kChunkStride + 2 * t;
  b[0] = *reinterpret_cast<const uint32_t*>(column);
  b[1] = *reinterpret_cast<const uint32_t*>(column + 8);
}

// 16 bytes global -> shared, asynchronously (cp.async, sm_80+); `valid` false writes 16 zero bytes instead
// (src-size 0: nothing is read, `global` need only be some valid address).
__device__ __forceinline__ void copy_16_async(void* shared, const void* global, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global), "r"(valid ? 16 : 0));
#else
  __trap();
#endif
}

// Closes the group of copies issued since the last commit.
__device__ __forceinline__ void commit_async_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most PENDING committed groups are still in flight (this thread's copies only: a
// __syncthreads() must follow before other threads read the data).
template <int PENDING>
__device__ __forceinline__ void wait_async_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING));
#endif
}

// 16 bytes global -> shared: synchronously, or with cp.async when ASYNC (see copy_16_async).
template <bool ASYNC>
__device__ __forceinline__ void copy_16(void* shared, const void* global, bool valid) {
  if constexpr (ASYNC) {
    copy_16_async(shared, global, valid);
  } else {
    *reinterpret_cast<uint4*>(shared) = valid ? *reinterpret_cast<const uint4*>(global) : make_uint4(0, 0, 0, 0);
  }
}

// Stage packed weights [n0, n0+NT) x TAPS x channels [c0, c0+16) into s_w [TAPS * NT][kChunkStride].
// `weights` is [cout_padded][TAPS][cin_padded] (pack_conv_weights), 16-byte aligned.
template <typename T, int TAPS, int NT, int THREADS, bool ASYNC = false>
__device__ __forceinline__ void stage_weight_chunk(const T* weights, int cin_padded, int n0, int c0, T* s_w) {
  for (int i = threadIdx.x; i < TAPS * NT * 2; i += THREADS) {
    const int row = i >> 1, half = i & 1;  // row = tap * NT + n
    const int tap = row / NT, n = row % NT;
    const int64_t offset = (int64_t(n0 + n) * TAPS + tap) * cin_padded + c0 + half * 8;
    copy_16<ASYNC>(s_w + row * kChunkStride + half * 8, weights + offset, true);
  }
}

__device__ __forceinline__ float prelu(float v, const float* alpha, int channel) {
  return (alpha != nullptr && v < 0.0f) ? v * alpha[channel] : v;
}

}  // namespace srgan_fast::cuda
