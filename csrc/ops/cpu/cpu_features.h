// What this CPU can run, detected once at run time.
#pragma once

namespace srgan_fast {

struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 and FMA3
  bool avx512 = false;       // AVX-512 F, BW, DQ, VL
  bool avx512_bf16 = false;  // VDPBF16PS
  bool avx512_vnni = false;  // VPDPBUSD
  bool amx_int8 = false;     // AMX-TILE and AMX-INT8, their state enabled by the OS and granted to this process
  bool amx_bf16 = false;     // AMX-TILE and AMX-BF16, likewise
  const char* amx_missing = "";  // why AMX is not granted: the first of CPU, OS and permission that lacks it
};

const CpuFeatures& cpu_features();

}  // namespace srgan_fast
