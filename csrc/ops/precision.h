// One vocabulary for the CPU and CUDA engines and their bindings: the arithmetic precision, the image skip.
#pragma once

#include <stdexcept>
#include <string>

namespace srgan_fast {

// int8 (CPU): the 3x3 convs inside the network in u8 x s8 products with s32 sums; the first and last layers in
// bf16 (fp32 where the CPU lacks AVX512_BF16).
enum class Precision { fp32, fp16, bf16, int8 };

inline Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "fp16") return Precision::fp16;
  if (name == "bf16") return Precision::bf16;
  if (name == "int8") return Precision::int8;
  throw std::invalid_argument("unknown precision '" + name + "': expected 'fp32', 'fp16', 'bf16' or 'int8'");
}

enum class ImageSkip { none, nearest, bilinear };  // the input upsampled and added to the network's output

inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::fp16: return "fp16";
    case Precision::bf16: return "bf16";
    case Precision::int8: return "int8";
  }
  return "?";
}

}  // namespace srgan_fast
