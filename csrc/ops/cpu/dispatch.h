// Choosing a kernel path: the best this CPU and build support, or a forced one (tests, benchmarks).
#pragma once

#include <string>
#include <vector>

#include "ops/cpu/kernels.h"

namespace srgan_fast::cpu {

enum class Path { reference, scalar, avx2, avx512 };

std::string path_name(Path path);
// "auto" | "reference" | "scalar" | "avx2" | "avx512" -> a path this machine can run at this precision;
// anything else, or a path this CPU/build lacks, throws std::invalid_argument saying what is available.
Path resolve_path(const std::string& name, Precision precision);
// Paths runnable here at this precision, fastest last.
std::vector<std::string> available_paths(Precision precision);
// The kernel table of a path (null for the reference path).
const CpuKernels* kernels_for(Path path);

}  // namespace srgan_fast::cpu
