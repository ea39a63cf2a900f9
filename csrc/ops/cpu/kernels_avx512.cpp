// The avx512 kernel table: the templates of winograd_kernels.h and head_tail_kernels.h instantiated with
// this instruction set's SIMD traits (this file alone is compiled with its -m flags; see CMakeLists.txt).
#include "ops/cpu/simd_avx512.h"
#include "ops/cpu/head_tail_kernels.h"
#include "ops/cpu/tail_winograd_kernels.h"
#include "ops/cpu/winograd_kernels.h"

namespace srgan_fast::cpu {

const CpuKernels& kernels_avx512() {
  using Simd = avx512::Simd;
  static const CpuKernels table{"avx512", &head<Simd>, &conv3x3_winograd<Simd, float>,
                                &conv3x3_winograd<Simd, uint16_t>, &tail_winograd<Simd>,
                                &tail_bf16<Simd>};
  return table;
}

}  // namespace srgan_fast::cpu
