// Choosing a kernel path: the best this CPU and build support, or a forced one (tests, benchmarks).
#pragma once

#include <string>
#include <vector>

#include "ops/cpu/kernels.h"

namespace srgan_fast::cpu {

// amx: avx512 with the int8 3x3 convs on AMX tiles; amx_emulated: the same kernels on the tiles' software
// model (tests: never chosen by "auto").
enum class Path { reference, scalar, avx2, avx512, amx, amx_emulated };

std::string path_name(Path path);
// "auto" | "reference" | "scalar" | "avx2" | "avx512" | "amx" | "amx_emulated" -> a path this machine can run
// at this precision;
// anything else, or a path this CPU/build lacks, throws std::invalid_argument saying what is available.
Path resolve_path(const std::string& name, Precision precision);
// Paths runnable here at this precision, fastest last (amx_emulated, a test path, is not listed).
std::vector<std::string> available_paths(Precision precision);
// The kernel table of a path (null for the reference path).
const CpuKernels* kernels_for(Path path);
// The widest activation codes [0, code_max] the int8 convs of these kernels sum exactly with `in_channels`
// (padded) input channels: 255 (u8 maps) for direct u8 x s8 dot products; for the integer Winograd F(2x2),
// whose s16 operands are 4x the centred codes and whose s32 result is 4 x 9 x cin x code x weight at most,
// the largest code both allow (u16 maps past 255), never under 255.
int int8_code_max(const CpuKernels& kernels, int in_channels);

}  // namespace srgan_fast::cpu
