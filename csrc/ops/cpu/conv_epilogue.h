// The fused epilogue of the float 3x3 convs (see Epilogue), per block of output pixels: bias, then PReLU, the
// scaled residual and outer residual, or PReLU and the pixel shuffle into the upsampled map. The Winograd kernel
// and the AMX bf16 kernel store through it, so both paths fuse the same steps in the same order.
#pragma once

#include "ops/cpu/isa_template.h"
#include "ops/cpu/kernels.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// A residual's value: scale * conv + skip, then outer_scale * that + outer_skip where there is one. Each step is
// one fused multiply-add, written out rather than left to the compiler's contraction, so that every kernel
// storing a residual (the fused dense blocks too) rounds it the same way, whatever its loops look like. A scale
// of 1 gives conv + skip exactly.
template <class S>
inline typename S::vf residual_value(typename S::vf conv, typename S::vf scale, const float* skip,
                                     typename S::vf outer_scale, const float* outer_skip) {
  const typename S::vf value = S::fma(conv, scale, S::load(skip));
  return outer_skip ? S::fma(value, outer_scale, S::load(outer_skip)) : value;
}

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
      const bool outer = p.outer_skip.data != nullptr;
      const vf scale = S::set1(p.skip_scale), outer_scale = S::set1(p.outer_scale);
      for (int r = 0; r < ny; ++r)
        for (int k = 0; k < nx; ++k) {
          const int y = y0 + r, x = x0 + k;
          const float* outer_skip = outer ? p.outer_skip.at(image, y, x) + co : nullptr;
          S::store(p.out.at(image, y, x) + co, residual_value<S>(S::add(values[r * stride + k], bias), scale,
                                                                 p.skip.at(image, y, x) + co, outer_scale, outer_skip));
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
