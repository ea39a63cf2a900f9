// Shared-memory staging and mma.m16n8k16 fragment loads used by every tensor-core kernel (device code only).
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), g = lane / 4, t = lane % 4:
//   A (16x16, row-major): a[0] = (row g,   k 2t..2t+1)  a[1] = (row g+8, k 2t..2t+1)
//                         a[2] = (row g,   k 2t+8..+9)  a[3] = (row g+8, k 2t+8..+9)
//   B (16x8, column):     b[0] = (k 2t..2t+1, col g)    b[1] = (k 2t+8..+9, col g)
//   C (16x8, fp32):       c[0..1] = (row g, col 2t..2t+1)   c[2..3] = (row g+8, col 2t..2t+1)
// In every kernel here k runs over input channels, which are contiguous in NHWC activations and in the packed
// weights: rows of 16 channels are staged in shared memory and ldmatrix turns them into fragments.
#pragma once

#include <cstdint>

#include "storage_types.cuh"

namespace srgan_fast::cuda {

constexpr int kChunk = 16;        // input channels per K step (one mma k16)
constexpr int kChunkStride = 24;  // elements per staged row of 16 channels: +8 padding puts the 8 rows that a
                                  // fragment load touches in distinct banks

// ldmatrix.x4 (sm_75+): four 8x8 matrices of 16-bit values from shared memory, one per register. Lane l gives
// the address of row l % 8 of matrix l / 8 (16 contiguous bytes); of matrix i every lane receives row lane / 4,
// columns 2 (lane % 4) and 2 (lane % 4) + 1, in register i: exactly the mma fragment of an 8x8 block.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
#else
  __trap();
#endif
}

// As ldmatrix_x4 with two matrices (lanes 0-15 give the addresses; the others' are ignored).
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(address));
#else
  __trap();
#endif
}

// A fragment (16 rows x 16 k) with one ldmatrix.x4: matrix 0 = rows 0-7 / k 0-7 (a[0]), 1 = rows 8-15 / k 0-7
// (a[1]), 2 = rows 0-7 / k 8-15 (a[2]), 3 = rows 8-15 / k 8-15 (a[3]). So lane l points at tile row
// a_fragment_row(l), element a_fragment_column(l) of the k16 chunk.
__device__ __forceinline__ int a_fragment_row(int lane) { return (lane & 7) + ((lane >> 3) & 1) * 8; }
__device__ __forceinline__ int a_fragment_column(int lane) { return (lane >> 4) * 8; }

// B fragments of output channels [8 ni, 8 ni + 16) for one tap from the staged weight chunk ([n][k] rows),
// with one ldmatrix.x4: matrix 0 = n-tile ni / k 0-7 (b0[0]), 1 = ni / k 8-15 (b0[1]), 2 = ni+1 / k 0-7
// (b1[0]), 3 = ni+1 / k 8-15 (b1[1]).
template <typename T, int NT>
__device__ __forceinline__ void load_b_fragment_pair(uint32_t (&b0)[2], uint32_t (&b1)[2], const T* s_w, int tap,
                                                     int ni, int lane) {
  const int matrix = lane >> 3;
  uint32_t r[4];
  ldmatrix_x4(r, s_w + (tap * NT + (ni + (matrix >> 1)) * 8 + (lane & 7)) * kChunkStride + (matrix & 1) * 8);
  b0[0] = r[0];
  b0[1] = r[1];
  b1[0] = r[2];
  b1[1] = r[3];
}

// One n-tile's B fragment (for NT = 8) with ldmatrix.x2: matrix 0 = k 0-7, 1 = k 8-15.
template <typename T, int NT>
__device__ __forceinline__ void load_b_fragment(uint32_t (&b)[2], const T* s_w, int tap, int ni, int lane) {
  ldmatrix_x2(b, s_w + (tap * NT + ni * 8 + (lane & 7)) * kChunkStride + ((lane >> 3) & 1) * 8);
}

// acc[m][ni] += A[m] x B[ni] for M row tiles and every n-tile of an NT-wide staged weight chunk at `tap`;
// each B fragment is loaded once and used for all M row tiles.
template <typename T, int NT, int M>
__device__ __forceinline__ void multiply_tiles(float (&acc)[M][NT / 8][4], const uint32_t (&a)[M][4], const T* s_w,
                                               int tap, int lane) {
  if constexpr (NT % 16 == 0) {
#pragma unroll
    for (int ni = 0; ni < NT / 8; ni += 2) {
      uint32_t b0[2], b1[2];
      load_b_fragment_pair<T, NT>(b0, b1, s_w, tap, ni, lane);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        StorageOps<T>::mma_16816(acc[m][ni], a[m], b0);
        StorageOps<T>::mma_16816(acc[m][ni + 1], a[m], b1);
      }
    }
  } else {
#pragma unroll
    for (int ni = 0; ni < NT / 8; ++ni) {
      uint32_t b[2];
      load_b_fragment<T, NT>(b, s_w, tap, ni, lane);
#pragma unroll
      for (int m = 0; m < M; ++m) StorageOps<T>::mma_16816(acc[m][ni], a[m], b);
    }
  }
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
