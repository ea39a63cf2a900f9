// The network's image store when it ends in a feature map (sub-pixel convolution nets such as SRVGGNetCompact,
// or a 3x3 last conv): pixel shuffle, the upsampled input added, conversion to the image dtype. Memory-bound
// (a few values per output pixel), so one portable implementation serves every path.
#pragma once

#include "ops/params.h"

namespace srgan_fast::cpu {

void image_output(const ImageOutputParams& p, const ExecContext& ctx);

}  // namespace srgan_fast::cpu
