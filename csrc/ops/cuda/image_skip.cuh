// The network's input upsampled to the output's resolution, as torch's F.interpolate computes it (nearest, or
// bilinear with align_corners=False: the source coordinate clamped at 0, the upper neighbour at the last pixel),
// for the image store (image_store.cu) and the reference (reference_kernels.cu). The CPU's copy of the rule,
// csrc/ops/cpu/image_output.cpp, is tested against torch on every machine.
#pragma once

#include "ops/precision.h"

namespace srgan_fast::cuda {

// Channel c of output pixel (y, x) of one image: pixel(iy, ix, c) reads the input in [0, 1], h x w, `scale`
// the ratio of the output's size to the input's.
template <class Pixel>
__device__ __forceinline__ float upsampled_image(ImageSkip skip, const Pixel& pixel, int h, int w, int scale,
                                                 int y, int x, int c) {
  if (skip == ImageSkip::nearest) return pixel(y / scale, x / scale, c);
  const float ratio = 1.0f / float(scale);
  const float sy = fmaxf((float(y) + 0.5f) * ratio - 0.5f, 0.0f), sx = fmaxf((float(x) + 0.5f) * ratio - 0.5f, 0.0f);
  const int y0 = min(int(sy), h - 1), x0 = min(int(sx), w - 1);
  const int y1 = y0 + (y0 < h - 1 ? 1 : 0), x1 = x0 + (x0 < w - 1 ? 1 : 0);
  const float wy = sy - float(y0), wx = sx - float(x0);
  const float top = (1.0f - wx) * pixel(y0, x0, c) + wx * pixel(y0, x1, c);
  const float bottom = (1.0f - wx) * pixel(y1, x0, c) + wx * pixel(y1, x1, c);
  return (1.0f - wy) * top + wy * bottom;
}

}  // namespace srgan_fast::cuda
