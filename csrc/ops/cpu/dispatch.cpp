#include "ops/cpu/dispatch.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "ops/cpu/cpu_features.h"

namespace srgan_fast::cpu {
namespace {

bool compiled(Path path) {
  switch (path) {
    case Path::reference:
    case Path::scalar: return true;
#ifdef SRGAN_FAST_HAVE_AVX2
    case Path::avx2: return true;
#endif
#ifdef SRGAN_FAST_HAVE_AVX512
    case Path::avx512: return true;
#endif
#ifdef SRGAN_FAST_HAVE_AMX
    case Path::amx:
    case Path::amx_emulated: return true;
#endif
    default: return false;
  }
}

// Why `path` cannot run here at `precision`, or "" when it can.
std::string unavailable(Path path, Precision precision) {
  const CpuFeatures& cpu = cpu_features();
  if (precision == Precision::fp16) return "the CPU kernels run fp32, bf16 or int8";
  if (!compiled(path)) return "this build has no " + path_name(path) + " kernels";
  if (path == Path::avx2 && !cpu.avx2_fma) return "this CPU lacks AVX2/FMA";
  if (path == Path::avx512 && !cpu.avx512) return "this CPU lacks AVX-512";
  if (path == Path::amx || path == Path::amx_emulated) {
    // Only int8 runs on the tiles so far: at fp32 and bf16 the avx512 path is the same kernels.
    if (precision != Precision::int8) return "the amx paths run int8 (fp32 and bf16 run on avx512)";
    if (!cpu.avx512_vnni) return "this CPU lacks AVX-512 VNNI (the amx paths' other kernels)";
    if (path == Path::amx && !cpu.amx_int8) return cpu.amx_missing;
  }
  if (precision == Precision::bf16) {
    if (path == Path::reference) return "the reference path computes in double precision only";
    // bf16 exists to use the bf16 dot-product instructions; elsewhere it would only be slower and less exact.
    if (path == Path::scalar || path == Path::avx2) return "bf16 runs only on the avx512 path (with AVX512_BF16)";
    if (path == Path::avx512 && !cpu.avx512_bf16) return "this CPU lacks AVX512_BF16";
  }
  if (precision == Precision::int8) {
    // int8 exists to use the u8 x s8 dot products: VPDPBUSD (avx512 with VNNI), VPMADDUBSW (avx2).
    if (path == Path::reference || path == Path::scalar) return "int8 runs on the avx2 and avx512 paths";
    if (path == Path::avx512 && !cpu.avx512_vnni) return "this CPU lacks AVX512_VNNI (the avx2 path runs int8)";
  }
  return "";
}

}  // namespace

std::string path_name(Path path) {
  switch (path) {
    case Path::reference: return "reference";
    case Path::scalar: return "scalar";
    case Path::avx2: return "avx2";
    case Path::avx512: return "avx512";
    case Path::amx: return "amx";
    case Path::amx_emulated: return "amx_emulated";
  }
  return "?";
}

std::vector<std::string> available_paths(Precision precision) {
  std::vector<std::string> names;
  for (Path p : {Path::reference, Path::scalar, Path::avx2, Path::avx512, Path::amx})
    if (unavailable(p, precision).empty()) names.push_back(path_name(p));
  return names;
}

Path resolve_path(const std::string& name, Precision precision) {
  if (precision == Precision::fp16)
    throw std::invalid_argument("the CPU engine runs precision 'fp32', 'bf16' or 'int8', got 'fp16'");
  const std::vector<std::string> names = available_paths(precision);
  std::string listed;
  for (const std::string& n : names) listed += (listed.empty() ? "" : ", ") + n;
  if (name == "auto") {
    // The reference path is always available, so "auto" finds something for fp32; bf16 needs AVX512_BF16,
    // int8 AVX2.
    for (Path p : {Path::amx, Path::avx512, Path::avx2, Path::scalar})
      if (unavailable(p, precision).empty()) return p;
    throw std::invalid_argument(precision == Precision::int8
                                    ? "precision 'int8' needs the avx2 or avx512 path, which this machine or build "
                                      "lacks; use precision 'fp32'"
                                    : "precision 'bf16' needs the avx512 path with AVX512_BF16, which this machine "
                                      "or build lacks; use precision 'fp32'");
  }
  for (Path p : {Path::reference, Path::scalar, Path::avx2, Path::avx512, Path::amx, Path::amx_emulated}) {
    if (path_name(p) != name) continue;
    const std::string why = unavailable(p, precision);
    if (!why.empty())
      throw std::invalid_argument("cpu path '" + name + "' is unavailable: " + why + " (available here: " +
                                  listed + ")");
    return p;
  }
  throw std::invalid_argument("unknown cpu path '" + name +
                              "': expected 'auto', 'reference', 'scalar', 'avx2', 'avx512', 'amx' or 'amx_emulated' (available here: " +
                              listed + ")");
}

int int8_code_max(const CpuKernels& kernels, int in_channels) {
  if (!kernels.int8_u16_codes || !kernels.int8_winograd) return 255;
  const int64_t by_sum = ((int64_t(1) << 31) - 1) / (int64_t(36) * std::max(in_channels, 1) * kernels.int8_weight_max);
  const int64_t by_s16 = 32767 / 4;
  return int(std::max<int64_t>(255, std::min(by_sum, by_s16)));
}

const CpuKernels* kernels_for(Path path) {
  switch (path) {
    case Path::scalar: return &kernels_scalar();
#ifdef SRGAN_FAST_HAVE_AVX2
    case Path::avx2: return &kernels_avx2();
#endif
#ifdef SRGAN_FAST_HAVE_AVX512
    case Path::avx512: return &kernels_avx512();
#endif
#ifdef SRGAN_FAST_HAVE_AMX
    case Path::amx: return &kernels_amx();
    case Path::amx_emulated: return &kernels_amx_emulated();
#endif
    default: return nullptr;
  }
}

}  // namespace srgan_fast::cpu
