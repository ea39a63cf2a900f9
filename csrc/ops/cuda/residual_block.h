// The fused residual block: conv3x3 + bias + PReLU + conv3x3 + bias + skip in one kernel.
#pragma once

#include <cuda_runtime.h>

#include "conv_params.h"

namespace srgan_fast::cuda {

// output = input + conv2(prelu(conv1(input) + bias1)) + bias2, all [batch, height, width, channels] NHWC in the
// storage type. The intermediate never leaves shared memory: each block of 8 x 16 outputs recomputes the
// 10 x 18 intermediate it needs (a 1-pixel halo) from a 12 x 20 input block, so that the block reads its
// input and writes its output once. Rounding matches the two-kernel path (conv_mma with the PReLU epilogue,
// then with the residual epilogue): the intermediate is rounded to storage, everything else is fp32.
struct ResidualBlockParams {
  const void* input;    // [batch, height, width, channels]; also the skip
  const void* weights1;  // packed [channels][9][channels] (pack_conv_weights)
  const float* bias1;    // [channels]
  const float* alpha1;   // [channels] PReLU slopes
  const void* weights2;  // packed [channels][9][channels]
  const float* bias2;    // [channels]
  void* output;          // [batch, height, width, channels]; must not overlap input
  int batch, height, width, channels;
};

// True for the channel counts the fused kernel is compiled for (16, 32, 64).
bool residual_block_fused_supports(int channels);

void residual_block_fused(const ResidualBlockParams& params, Precision precision, cudaStream_t stream);

}  // namespace srgan_fast::cuda
