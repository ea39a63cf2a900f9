#include "ops/cpu/cpu_features.h"

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace srgan_fast {
namespace {

// AMX needs three things: the CPU's tile unit (CPUID 7.0 EDX bit 24; int8 bit 25, bf16 bit 22), the OS saving the
// tile state (XCR0 bits 17 and 18), and Linux's per-process permission to use it (arch_prctl
// ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, 18), which a forked child inherits and exec clears.
const char* detect_amx(bool& int8, bool& bf16) {
#if defined(__x86_64__) && defined(__linux__)
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 24))) return "this CPU lacks AMX-TILE";
  const bool has_int8 = edx & (1u << 25), has_bf16 = edx & (1u << 22);
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) return "the OS does not enable XSAVE";
  unsigned xcr0_low, xcr0_high;
  asm volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  if ((xcr0_low & (3u << 17)) != (3u << 17)) return "the OS does not save the AMX tile state (XCR0)";
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
    return "the OS refused this process the AMX tile state (arch_prctl)";
  int8 = has_int8, bf16 = has_bf16;
  return "";
#else
  (void)int8, (void)bf16;
  return "AMX is used on x86-64 Linux only";
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  // __builtin_cpu_supports also checks that the OS saves the vector registers (XCR0).
  __builtin_cpu_init();
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
  f.avx512_vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
#endif
  bool amx_int8 = false, amx_bf16 = false;
  f.amx_missing = detect_amx(amx_int8, amx_bf16);
  f.amx_int8 = f.avx512_vnni && amx_int8;
  f.amx_bf16 = f.avx512 && amx_bf16;
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace srgan_fast
