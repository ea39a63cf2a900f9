// Plain parameter structs and host launchers for the CUDA convolution kernels (no framework types).
//
// Every activation is NHWC. The fast kernels store activations as fp16 or bf16 and accumulate in fp32 on
// tensor cores; the reference kernels do everything in fp32, one thread per output value, and exist so that
// tests and the engine's self-check have an obviously right answer next to every fast path.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/precision.h"

namespace srgan_fast::cuda {

using srgan_fast::Precision;  // fp16 or bf16 here: the tensor-core kernels store activations in 16 bits

// What the first kernel reads: the activation storage type, or a raw image whose integer range is mapped
// to [0, 1] while loading (uint8 / 255, uint16 / 65535, float32 as is).
enum class InputKind : int { kStorage = 0, kUint8 = 1, kUint16 = 2, kFloat32 = 3 };

// What the epilogue writes.
//   kStorage          [N, H, W, cout] in the storage type
//   kStorageShuffle2  PixelShuffle(2) folded into the addresses: torch conv channel c*4 + i*2 + j goes to
//                     [N, 2H, 2W, cout/4] at (2y + i, 2x + j, c), and PReLU uses alpha[c] (torch's order);
//                     the weights must be packed sub-pixel-major (pack_conv_weights), bias stays torch's
//   kUint8/kUint16    clamp to [0, 1], scale to the full range, round half to even (torch's round)
//   kFloat32          clamp to [0, 1]
//   kFloat32Unclamped no clamp: the self-check compares the raw network output, and the image store reads a
//                     last conv's map [N, H, W, cout] (cout values per pixel, no padding)
enum class OutputKind : int {
  kStorage = 0, kStorageShuffle2 = 1, kUint8 = 2, kUint16 = 3, kFloat32 = 4, kFloat32Unclamped = 5
};

// out = epilogue(conv_KxK(input) + bias): then PReLU (if alpha), then + residual (if residual).
struct ConvParams {
  const void* input;     // [batch, height, width, in_channels] of InputKind
  const void* weights;   // packed [cout_padded][ksize*ksize][cin_padded], storage type (pack_conv_weights;
                         // sub-pixel-major rows for kStorageShuffle2)
  const float* bias;     // [cout]
  const float* alpha;    // PReLU slopes: [cout], or [cout/4] for kStorageShuffle2; nullptr: no PReLU
  const void* residual;  // [batch, height, width, cout] storage type, added last; nullptr: none
  void* output;          // layout and type per output_kind
  int batch, height, width;
  int in_channels;       // channels stored per input pixel (3 for a raw image)
  int cin_padded;        // multiple of 16, >= in_channels; channels beyond in_channels read as zero
  int cout;              // real output channels
  int cout_padded;       // weights rows: a multiple of 8 (tail) or 16 (others)
  int ksize;             // 3 or 9
  InputKind input_kind;
  OutputKind output_kind;
};

// The network's last step when its last conv writes a float32 map (an image skip, or a pixel shuffle to the
// image): output = store(PixelShuffle(shuffle)(features) + upsampled image), one thread per output value.
struct ImageStoreParams {
  const float* features;  // [batch, height * scale / shuffle, width * scale / shuffle, 3 shuffle^2]: the last conv's
                          // output, bias added (channel c of sub-pixel (i, j) is c shuffle^2 + i shuffle + j)
  const void* image;      // [batch, height, width, 3] of image_kind: the network's input
  void* output;           // [batch, scale height, scale width, 3] of output_kind (an image kind)
  int batch, height, width, scale, shuffle;
  ImageSkip skip;
  InputKind image_kind;
  OutputKind output_kind;
};
void image_store(const ImageStoreParams& params, cudaStream_t stream);

// Implicit-GEMM convolution on tensor cores (mma.sync m16n8k16, sm_80+). Validates the params (throws
// std::invalid_argument naming the bad field) and launches on `stream`.
void conv_mma(const ConvParams& params, Precision precision, cudaStream_t stream);

// --- fp32 references, one thread per output value, each mirroring one torch op -------------------------

// torch.nn.functional.conv2d(padding=k//2) + bias, then PReLU (if alpha), then + residual (if residual).
struct ReferenceConvParams {
  const float* input;     // [batch, height, width, cin]
  const float* weights;   // torch layout [cout, cin, ksize, ksize]
  const float* bias;      // [cout]
  const float* alpha;     // [cout] or nullptr
  const float* residual;  // [batch, height, width, cout] or nullptr
  float* output;          // [batch, height, width, cout]
  int batch, height, width, cin, cout, ksize;
};
void reference_conv2d(const ReferenceConvParams& params, cudaStream_t stream);

// nn.PixelShuffle(factor) then nn.PReLU(channels) (alpha nullptr: none): [N, H, W, C f^2] -> [N, fH, fW, C].
void reference_pixel_shuffle_prelu(const float* input, const float* alpha, float* output, int batch, int height,
                                   int width, int channels, int factor, cudaStream_t stream);

// output [N, scale H, scale W, 3] += image [N, H, W, 3] (float in [0, 1]) upsampled by F.interpolate (`skip`).
void reference_add_image_skip(const float* image, ImageSkip skip, float* output, int batch, int height, int width,
                              int scale, cudaStream_t stream);

// Raw image [count] values -> float in [0, 1] (no clamp, as the torch backend).
void reference_input_to_float(const void* input, InputKind kind, float* output, int64_t count,
                              cudaStream_t stream);

// float [count] -> clamp(0, 1) and scale/round to the output kind (kStorage kinds are not accepted).
void reference_output_from_float(const float* input, OutputKind kind, void* output, int64_t count,
                                 cudaStream_t stream);

}  // namespace srgan_fast::cuda
