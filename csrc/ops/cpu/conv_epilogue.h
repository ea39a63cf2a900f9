// The fused epilogue of the float 3x3 convs (see Epilogue), per block of output pixels: bias, then PReLU, the
// scaled residual and outer residual, or PReLU and the pixel shuffle into the upsampled map. The Winograd kernel
// and the AMX bf16 kernel store through it, so both paths fuse the same steps in the same order.
#pragma once

#include "ops/cpu/isa_template.h"
#include "ops/cpu/kernels.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// Conv outputs (y0 + r, x0 + k) of `image`, r < ny, k < nx, channels co .. co+W-1: values[r * stride + k] holds
// their sums without the bias. Stored to p.out, or to p.out_bf16 where the shuffle epilogue has one.
template <class S>
inline void store_conv_outputs(const Conv3x3Params& p, int image, int y0, int x0, int ny, int nx, int co,
                               const typename S::vf* values, int stride) {
  using vf = typename S::vf;
  const PackedConv3x3& wt = *p.weights;
  const vf bias = S::load(wt.bias + co);
  switch (p.epilogue) {
    case Epilogue::bias_prelu: {
      const vf slope = S::load(wt.alpha + co);
      for (int r = 0; r < ny; ++r)
        for (int k = 0; k < nx; ++k)
          S::store(p.out.at(image, y0 + r, x0 + k) + co, S::prelu(S::add(values[r * stride + k], bias), slope));
      break;
    }
    case Epilogue::bias_add_skip: {
      const bool scaled = p.skip_scale != 1.f, outer = p.outer_skip.data != nullptr;
      const vf scale = S::set1(p.skip_scale), outer_scale = S::set1(p.outer_scale);
      for (int r = 0; r < ny; ++r)
        for (int k = 0; k < nx; ++k) {
          const int y = y0 + r, x = x0 + k;
          vf value = S::add(values[r * stride + k], bias);
          if (scaled) value = S::mul(value, scale);
          value = S::add(value, S::load(p.skip.at(image, y, x) + co));
          if (outer) value = S::add(S::mul(value, outer_scale), S::load(p.outer_skip.at(image, y, x) + co));
          S::store(p.out.at(image, y, x) + co, value);
        }
      break;
    }
    case Epilogue::bias_shuffle_prelu: {
      // Packed channel co = (2i + j) * group + ch goes to channel ch of pixel (2y + i, 2x + j).
      const int group = wt.cout / 4, sub = co / group, ch = co % group, i = sub / 2, j = sub % 2;
      const vf slope = S::load(wt.alpha + ch);
      for (int r = 0; r < ny; ++r)
        for (int k = 0; k < nx; ++k) {
          const vf value = S::prelu(S::add(values[r * stride + k], bias), slope);
          const int oy = 2 * (y0 + r) + i, ox = 2 * (x0 + k) + j;
          if constexpr (S::kHasBf16) {
            if (p.out_bf16.data) {
              S::store_bf16(p.out_bf16.at(image, oy, ox) + ch, value);
              continue;
            }
          }
          S::store(p.out.at(image, oy, ox) + ch, value);
        }
      break;
    }
  }
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
