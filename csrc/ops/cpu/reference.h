// The reference path: direct convolutions in plain loops with double accumulation, reading torch-layout
// weights as they are. Slow and obviously right; the fast kernels are tested against it and against torch.
#pragma once

#include "ops/params.h"

namespace srgan_fast::reference {

struct RawConv {                  // a conv in torch layout
  const float* weight = nullptr;  // [cout][cin][k][k]
  const float* bias = nullptr;    // [cout]
  int cout = 0, cin = 0, k = 0;
};

// Mirrors model.Generator.head + head_prelu, with the image conversion of backends.base.
void head(const void* image, DType dtype, int n, int h, int w, const RawConv& conv, const float* alpha,
          const FeatureMap& out, const FeatureMap& out_copy);
// Mirrors a 3x3 conv with what p fuses around it (see Conv3x3Params; p.weights unused); alpha is null for
// bias_add_skip.
void conv3x3(const Conv3x3Params& p, const RawConv& conv, const float* alpha);
// Mirrors model.Generator.tail, then clamp to [0, 1], scale to the dtype, round half to even.
void tail(const FeatureMap& in, const RawConv& conv, void* out, DType dtype);

}  // namespace srgan_fast::reference
