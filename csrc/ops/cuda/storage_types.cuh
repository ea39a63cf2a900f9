// fp16 / bf16 storage: conversions and the tensor-core instruction for each (device code only).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace srgan_fast::cuda {

template <typename T>
struct StorageOps;

template <>
struct StorageOps<__half> {
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
  static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
  // Two adjacent channels in one 32-bit access (the address must be 4-byte aligned).
  static __device__ __forceinline__ void store_pair(__half* at, float v0, float v1) {
    *reinterpret_cast<__half2*>(at) = __floats2half2_rn(v0, v1);
  }
  static __device__ __forceinline__ float2 load_pair(const __half* at) {
    return __half22float2(*reinterpret_cast<const __half2*>(at));
  }
  // D[16x8] += A[16x16] (row) * B[16x8] (col), fp32 accumulate. Fragment layouts: see conv_mma.cu.
  static __device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();  // the host refuses devices below sm_80 before launching
#endif
  }
};

template <>
struct StorageOps<__nv_bfloat16> {
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
  static __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ void store_pair(__nv_bfloat16* at, float v0, float v1) {
    *reinterpret_cast<__nv_bfloat162*>(at) = __floats2bfloat162_rn(v0, v1);
  }
  static __device__ __forceinline__ float2 load_pair(const __nv_bfloat16* at) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(at));
  }
  static __device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();
#endif
  }
};

}  // namespace srgan_fast::cuda
