#include "ops/cpu/dispatch.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "ops/cpu/cpu_features.h"

namespace srgan_fast::cpu {
namespace {

// Why a path cannot run at a precision ("" when it can), by what the CPU has.
using Refusal = std::string (*)(const CpuFeatures& cpu, Precision precision);

// One instruction-set path: everything the engine, bindings and `srgan-fast info` know of it. Adding a path is
// a row here, its kernels_<isa>.cpp and the CMake lines that compile that file with its flags.
struct PathEntry {
  Path path;
  const char* name;
  const CpuKernels* (*kernels)();  // null: not compiled into this build (or the reference path: no table)
  Refusal refusal;
  bool automatic;                  // whether "auto" may choose it (from the fastest: the table's end)
};

template <const CpuKernels& (*Table)()>
const CpuKernels* table() { return &Table(); }

std::string bf16_needs_avx512(const CpuFeatures&, Precision precision) {
  // bf16 exists to use the bf16 dot-product instructions; elsewhere it would only be slower and less exact.
  if (precision == Precision::bf16) return "bf16 runs only on the avx512 path (with AVX512_BF16)";
  return "";
}

std::string reference_refusal(const CpuFeatures&, Precision precision) {
  if (precision == Precision::bf16) return "the reference path computes in double precision only";
  if (precision == Precision::int8) return "int8 runs on the avx2, avx512 and amx paths";
  return "";
}

std::string scalar_refusal(const CpuFeatures& cpu, Precision precision) {
  if (precision == Precision::int8) return "int8 runs on the avx2, avx512 and amx paths";
  return bf16_needs_avx512(cpu, precision);
}

std::string avx2_refusal(const CpuFeatures& cpu, Precision precision) {
  if (!cpu.avx2_fma) return "this CPU lacks AVX2/FMA";
  return bf16_needs_avx512(cpu, precision);
}

std::string avx512_refusal(const CpuFeatures& cpu, Precision precision) {
  if (!cpu.avx512) return "this CPU lacks AVX-512";
  if (precision == Precision::bf16 && !cpu.avx512_bf16) return "this CPU lacks AVX512_BF16";
  // int8 exists to use the u8 x s8 dot products: VPDPBUSD here (VPMADDUBSW-class s16 products on avx2).
  if (precision == Precision::int8 && !cpu.avx512_vnni) return "this CPU lacks AVX512_VNNI (the avx2 path runs int8)";
  return "";
}

std::string amx_emulated_refusal(const CpuFeatures& cpu, Precision precision) {
  // fp32 stays on vector units: the tiles multiply bf16 and int8 only.
  if (precision == Precision::fp32) return "the amx paths run bf16 and int8 (fp32 runs on avx512)";
  if (!cpu.avx512) return "this CPU lacks AVX-512 (the amx paths' other kernels)";
  if (precision == Precision::int8 && !cpu.avx512_vnni) return "this CPU lacks AVX-512 VNNI (the amx paths' other kernels)";
  return "";
}

std::string amx_refusal(const CpuFeatures& cpu, Precision precision) {
  const std::string why = amx_emulated_refusal(cpu, precision);
  if (!why.empty()) return why;
  if (cpu.amx_missing[0] != '\0') return cpu.amx_missing;
  if (precision == Precision::int8 && !cpu.amx_int8) return "this CPU lacks AMX-INT8";
  if (precision == Precision::bf16 && !cpu.amx_bf16) return "this CPU lacks AMX-BF16";
  return "";
}

const PathEntry kPaths[] = {
    {Path::reference, "reference", nullptr, &reference_refusal, false},
    {Path::scalar, "scalar", &table<kernels_scalar>, &scalar_refusal, true},
#ifdef SRGAN_FAST_HAVE_AVX2
    {Path::avx2, "avx2", &table<kernels_avx2>, &avx2_refusal, true},
#else
    {Path::avx2, "avx2", nullptr, &avx2_refusal, true},
#endif
#ifdef SRGAN_FAST_HAVE_AVX512
    {Path::avx512, "avx512", &table<kernels_avx512>, &avx512_refusal, true},
#else
    {Path::avx512, "avx512", nullptr, &avx512_refusal, true},
#endif
#ifdef SRGAN_FAST_HAVE_AMX
    {Path::amx, "amx", &table<kernels_amx>, &amx_refusal, true},
    {Path::amx_emulated, "amx_emulated", &table<kernels_amx_emulated>, &amx_emulated_refusal, false},
#else
    {Path::amx, "amx", nullptr, &amx_refusal, true},
    {Path::amx_emulated, "amx_emulated", nullptr, &amx_emulated_refusal, false},
#endif
};

const PathEntry& entry(Path path) {
  for (const PathEntry& e : kPaths)
    if (e.path == path) return e;
  throw std::logic_error("a cpu::Path without an entry in kPaths");
}

// Why `e` cannot run here at `precision`, or "" when it can.
std::string unavailable(const PathEntry& e, Precision precision) {
  if (precision == Precision::fp16) return "the CPU kernels run fp32, bf16 or int8";
  if (e.path != Path::reference && e.kernels == nullptr) return std::string("this build has no ") + e.name + " kernels";
  return e.refusal(cpu_features(), precision);
}

}  // namespace

std::string path_name(Path path) { return entry(path).name; }

std::vector<std::string> available_paths(Precision precision) {
  std::vector<std::string> names;
  for (const PathEntry& e : kPaths)
    if (e.path != Path::amx_emulated && unavailable(e, precision).empty()) names.push_back(e.name);
  return names;
}

Path resolve_path(const std::string& name, Precision precision) {
  if (precision == Precision::fp16)
    throw std::invalid_argument("the CPU engine runs precision 'fp32', 'bf16' or 'int8', got 'fp16'");
  const std::vector<std::string> names = available_paths(precision);
  std::string listed;
  for (const std::string& n : names) listed += (listed.empty() ? "" : ", ") + n;
  if (name == "auto") {
    // The scalar path always runs fp32; bf16 needs AVX512_BF16, int8 AVX2.
    for (auto e = std::rbegin(kPaths); e != std::rend(kPaths); ++e)
      if (e->automatic && unavailable(*e, precision).empty()) return e->path;
    throw std::invalid_argument(precision == Precision::int8
                                    ? "precision 'int8' needs the avx2 or avx512 path, which this machine or build "
                                      "lacks; use precision 'fp32'"
                                    : "precision 'bf16' needs the avx512 path with AVX512_BF16, which this machine "
                                      "or build lacks; use precision 'fp32'");
  }
  std::string known;
  for (const PathEntry& e : kPaths) {
    known += std::string(known.empty() ? "'auto', '" : ", '") + e.name + "'";
    if (e.name != name) continue;
    const std::string why = unavailable(e, precision);
    if (!why.empty())
      throw std::invalid_argument("cpu path '" + name + "' is unavailable: " + why + " (available here: " +
                                  listed + ")");
    return e.path;
  }
  throw std::invalid_argument("unknown cpu path '" + name + "': expected " + known + " (available here: " +
                              listed + ")");
}

int int8_code_max(const CpuKernels& kernels, int in_channels) {
  if (!kernels.int8_u16_codes || !kernels.int8_winograd) return 255;
  const int64_t by_sum = ((int64_t(1) << 31) - 1) / (int64_t(36) * std::max(in_channels, 1) * kernels.int8_weight_max);
  const int64_t by_s16 = 32767 / 4;
  return int(std::max<int64_t>(255, std::min(by_sum, by_s16)));
}

const CpuKernels* kernels_for(Path path) {
  const PathEntry& e = entry(path);
  return e.kernels ? e.kernels() : nullptr;
}

}  // namespace srgan_fast::cpu
