#include "ops/cpu/image_output.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/cpu/kernels.h"

namespace srgan_fast::cpu {
namespace {

struct Portable {};  // image_value's SIMD-traits parameter: this file has one copy for every path

// One axis of torch's bilinear interpolation (align_corners=False): output index -> two source indices and
// their weights, with the source coordinate clamped at 0 and the upper index at the last pixel.
struct BilinearTaps {
  std::vector<int> lo, hi;
  std::vector<float> w_lo, w_hi;
  BilinearTaps(int in_size, int scale) : lo(in_size * scale), hi(in_size * scale), w_lo(lo.size()), w_hi(lo.size()) {
    const float ratio = 1.f / float(scale);
    for (int o = 0; o < in_size * scale; ++o) {
      const float src = std::max((float(o) + 0.5f) * ratio - 0.5f, 0.f);
      const int i0 = std::min(int(src), in_size - 1);
      lo[o] = i0, hi[o] = i0 + (i0 < in_size - 1 ? 1 : 0);
      w_hi[o] = src - float(i0), w_lo[o] = 1.f - w_hi[o];
    }
  }
};

template <class T>
void store(const ImageOutputParams& p, const ExecContext& ctx) {
  const T* image = static_cast<const T*>(p.image);
  T* out = static_cast<T*>(p.out);
  const int s = p.shuffle, out_h = p.h * p.scale, out_w = p.w * p.scale;
  const float full = full_scale(p.dtype);
  const auto pixel = [&](int b, int y, int x, int c) {  // the input image in [0, 1], as the torch reference
    return float(image[((size_t(b) * p.h + y) * p.w + x) * 3 + c]) / full;
  };
  const BilinearTaps rows(p.skip == ImageSkip::bilinear ? p.h : 0, p.scale);
  const BilinearTaps cols(p.skip == ImageSkip::bilinear ? p.w : 0, p.scale);
  const int band = p.rows > 0 ? p.rows : out_h, first_feature_row = p.first_row / s;
  const int64_t total_rows = int64_t(p.n) * band;
#pragma omp parallel for num_threads(ctx.threads) schedule(static)
  for (int64_t r = 0; r < total_rows; ++r) {
    const int b = int(r / band), y = p.first_row + int(r % band);
    T* dst = out + (size_t(b) * out_h + y) * out_w * 3;
    if (s == 1 && p.skip == ImageSkip::none) {  // the map's first 3 channels as they are (RRDBNet's conv_last)
      const float* features = p.in.at(b, y - first_feature_row, 0);
      for (int x = 0; x < out_w; ++x, features += p.in.c)
        for (int c = 0; c < 3; ++c) dst[x * 3 + c] = image_value<Portable, T>(features[c], full);
      continue;
    }
    for (int x = 0; x < out_w; ++x) {
      const float* features = p.in.at(b, y / s - first_feature_row, x / s) + (y % s) * s + (x % s);
      for (int c = 0; c < 3; ++c) {
        float v = features[c * s * s];
        if (p.skip == ImageSkip::nearest) {
          v += pixel(b, y / p.scale, x / p.scale, c);
        } else if (p.skip == ImageSkip::bilinear) {
          const float top = cols.w_lo[x] * pixel(b, rows.lo[y], cols.lo[x], c) +
                            cols.w_hi[x] * pixel(b, rows.lo[y], cols.hi[x], c);
          const float bottom = cols.w_lo[x] * pixel(b, rows.hi[y], cols.lo[x], c) +
                               cols.w_hi[x] * pixel(b, rows.hi[y], cols.hi[x], c);
          v += rows.w_lo[y] * top + rows.w_hi[y] * bottom;
        }
        dst[x * 3 + c] = image_value<Portable, T>(v, full);
      }
    }
  }
}

}  // namespace

void image_output(const ImageOutputParams& p, const ExecContext& ctx) {
  switch (p.dtype) {
    case DType::u8: return store<uint8_t>(p, ctx);
    case DType::u16: return store<uint16_t>(p, ctx);
    case DType::f32: return store<float>(p, ctx);
  }
}

}  // namespace srgan_fast::cpu
