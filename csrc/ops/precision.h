// The arithmetic precision of an engine, one vocabulary for the CPU and CUDA engines and their bindings.
#pragma once

#include <stdexcept>
#include <string>

namespace srgan_fast {

enum class Precision { fp32, fp16, bf16 };

inline Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "fp16") return Precision::fp16;
  if (name == "bf16") return Precision::bf16;
  throw std::invalid_argument("unknown precision '" + name + "': expected 'fp32', 'fp16' or 'bf16'");
}

inline const char* precision_name(Precision p) {
  return p == Precision::fp32 ? "fp32" : p == Precision::fp16 ? "fp16" : "bf16";
}

}  // namespace srgan_fast
