// The scalar kernel table: the templates of winograd_kernels.h and head_tail_kernels.h instantiated with
// this instruction set's SIMD traits (this file alone is compiled with its -m flags; see CMakeLists.txt).
#define SRGAN_FAST_ISA portable
#include "ops/cpu/simd_portable.h"
#include "ops/cpu/head_tail_kernels.h"
#include "ops/cpu/tail_winograd_kernels.h"
#include "ops/cpu/winograd_kernels.h"

namespace srgan_fast::cpu {

const CpuKernels& kernels_scalar() {
  using Simd = portable::Simd;
  static const CpuKernels table = [] {
    CpuKernels t;
    t.name = "scalar";
    t.head = &portable::head<Simd>;
    t.conv3x3 = &portable::conv3x3_winograd<Simd, float>;
    t.tail = &portable::tail_winograd<Simd>;
    return t;
  }();
  return table;
}

}  // namespace srgan_fast::cpu
