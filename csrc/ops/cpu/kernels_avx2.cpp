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
  static const CpuKernels table = [] {
    CpuKernels t;
    t.name = "avx2";
    t.head = &avx2::head<Simd>;
    t.conv3x3 = &avx2::conv3x3_winograd<Simd, float>;
    t.tail = &avx2::tail_winograd<Simd>;
    t.conv3x3_int8 = &avx2::conv3x3_int8_winograd<Simd>;
    t.quantize_codes = &avx2::quantize_codes<Simd>;
    t.int8_weight_max = Simd::kInt8WeightMax;
    t.int8_winograd = true, t.int8_u16_codes = true;
    return t;
  }();
  return table;
}

}  // namespace srgan_fast::cpu
