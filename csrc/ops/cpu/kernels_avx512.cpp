// The avx512 kernel table: the templates of winograd_kernels.h and head_tail_kernels.h instantiated with
// this instruction set's SIMD traits, and those of int8_kernels.h and dense_block_int8_kernels.h (this file
// alone is compiled with its -m flags; see CMakeLists.txt).
#define SRGAN_FAST_ISA avx512
#include "ops/cpu/simd_avx512.h"
#include "ops/cpu/dense_block_int8_kernels.h"
#include "ops/cpu/head_tail_kernels.h"
#include "ops/cpu/int8_kernels.h"
#include "ops/cpu/tail_winograd_kernels.h"
#include "ops/cpu/winograd_kernels.h"

namespace srgan_fast::cpu {

const CpuKernels& kernels_avx512() {
  using Simd = avx512::Simd;
  static const CpuKernels table = [] {
    CpuKernels t;
    t.name = "avx512";
    t.head = &avx512::head<Simd>;
    t.conv3x3 = &avx512::conv3x3_winograd<Simd, float>;
    t.conv3x3_bf16 = &avx512::conv3x3_winograd<Simd, uint16_t>;
    t.tail = &avx512::tail_winograd<Simd>;
    t.tail_bf16 = &avx512::tail_bf16<Simd>;
    t.conv3x3_int8 = &avx512::conv3x3_int8<Simd>;
    t.quantize_codes = &avx512::quantize_codes<Simd>;
    t.dense_block_int8 = &avx512::dense_block_int8_vnni<Simd>;
    t.dense_block_int8_fits = &avx512::dense_block_int8_fits;
    t.int8_weight_max = Simd::kInt8WeightMax;
    return t;
  }();
  return table;
}

}  // namespace srgan_fast::cpu
