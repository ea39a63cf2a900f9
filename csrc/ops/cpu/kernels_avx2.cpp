// The avx2 kernel table: the templates of winograd_kernels.h, head_tail_kernels.h and int8_winograd_kernels.h
// instantiated with this instruction set's SIMD traits (this file alone is compiled with its -m flags; see
// CMakeLists.txt).
#define SRGAN_FAST_ISA avx2
#include "ops/cpu/simd_avx2.h"
#include "ops/cpu/head_tail_kernels.h"
#include "ops/cpu/int8_winograd_kernels.h"
#include "ops/cpu/tail_winograd_kernels.h"
#include "ops/cpu/winograd_kernels.h"

namespace srgan_fast::cpu {

const CpuKernels& kernels_avx2() {
  using Simd = avx2::Simd;
  static const CpuKernels table{"avx2", &avx2::head<Simd>, &avx2::conv3x3_winograd<Simd, float>,
                                nullptr, &avx2::tail_winograd<Simd>, nullptr,
                                &avx2::conv3x3_int8_winograd<Simd>, &avx2::quantize_codes<Simd>,
                                Simd::kInt8WeightMax, true, true};
  return table;
}

}  // namespace srgan_fast::cpu
