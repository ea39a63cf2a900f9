#include "ops/cpu/reference.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace srgan_fast::reference {
namespace {

float read_image(const void* image, DType dtype, size_t index) {
  switch (dtype) {
    case DType::u8: return static_cast<const uint8_t*>(image)[index] / 255.f;
    case DType::u16: return static_cast<const uint16_t*>(image)[index] / 65535.f;
    case DType::f32: return static_cast<const float*>(image)[index];
  }
  return 0.f;
}

double prelu(double x, double slope) { return x >= 0 ? x : slope * x; }

// out[co] = bias[co] + sum over taps and input channels, for one output pixel of a padded feature map read
// nearest-upsampled by `up` (its halo is the zero padding around the upsampled map too).
void conv_pixel(const FeatureMap& in, const RawConv& conv, int image, int y, int x, std::vector<double>& acc,
                int up = 1) {
  const int r = conv.k / 2;
  for (int co = 0; co < conv.cout; ++co) {
    double sum = conv.bias[co];
    for (int ci = 0; ci < conv.cin; ++ci)
      for (int ky = 0; ky < conv.k; ++ky)
        for (int kx = 0; kx < conv.k; ++kx)
          sum += double(conv.weight[((size_t(co) * conv.cin + ci) * conv.k + ky) * conv.k + kx]) *
                 in.at(image, floor_div(y + ky - r, up), floor_div(x + kx - r, up))[ci];
    acc[co] = sum;
  }
}

}  // namespace

void head(const void* image, DType dtype, int n, int h, int w, const RawConv& conv, const float* alpha,
          const FeatureMap& out, const FeatureMap& out_copy) {
  const int r = conv.k / 2;
  for (int b = 0; b < n; ++b)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int co = 0; co < conv.cout; ++co) {
          double sum = conv.bias[co];
          for (int ci = 0; ci < conv.cin; ++ci)
            for (int ky = 0; ky < conv.k; ++ky)
              for (int kx = 0; kx < conv.k; ++kx) {
                const int sy = y + ky - r, sx = x + kx - r;
                if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;  // zero padding
                sum += double(conv.weight[((size_t(co) * conv.cin + ci) * conv.k + ky) * conv.k + kx]) *
                       read_image(image, dtype, ((size_t(b) * h + sy) * w + sx) * conv.cin + ci);
              }
          const float v = float(prelu(sum, alpha[co]));
          out.at(b, y, x)[co] = v;
          if (out_copy.data) out_copy.at(b, y, x)[co] = v;
        }
}

void conv3x3(const Conv3x3Params& p, const RawConv& conv, const float* alpha) {
  const FeatureMap &in = p.in, &skip = p.skip, &out = p.out;
  std::vector<double> acc(conv.cout);
  for (int b = 0; b < in.n; ++b)
    for (int y = 0; y < in.h * p.upsample; ++y)
      for (int x = 0; x < in.w * p.upsample; ++x) {
        conv_pixel(in, conv, b, y, x, acc, p.upsample);
        for (int co = 0; co < conv.cout; ++co) {
          switch (p.epilogue) {
            case Epilogue::bias_prelu: out.at(b, y, x)[co] = float(prelu(acc[co], alpha[co])); break;
            case Epilogue::bias_add_skip: {
              double v = p.skip_scale * acc[co] + skip.at(b, y, x)[co];
              if (p.outer_skip.data) v = p.outer_scale * v + p.outer_skip.at(b, y, x)[co];
              out.at(b, y, x)[co] = float(v);
              break;
            }
            case Epilogue::bias_shuffle_prelu: {
              // PixelShuffle(2): conv channel c * 4 + 2 * i + j lands on channel c at (2y + i, 2x + j).
              const int c = co / 4, i = (co % 4) / 2, j = co % 2;
              out.at(b, 2 * y + i, 2 * x + j)[c] = float(prelu(acc[co], alpha[c]));
              break;
            }
          }
        }
      }
}

void tail(const FeatureMap& in, const RawConv& conv, void* out, DType dtype) {
  std::vector<double> acc(conv.cout);
  const float scale = full_scale(dtype);
  for (int b = 0; b < in.n; ++b)
    for (int y = 0; y < in.h; ++y)
      for (int x = 0; x < in.w; ++x) {
        conv_pixel(in, conv, b, y, x, acc);
        for (int co = 0; co < 3; ++co) {
          const size_t index = ((size_t(b) * in.h + y) * in.w + x) * 3 + co;
          const float v = std::clamp(float(acc[co]), 0.f, 1.f);
          switch (dtype) {
            case DType::u8: static_cast<uint8_t*>(out)[index] = uint8_t(std::nearbyint(v * scale)); break;
            case DType::u16: static_cast<uint16_t*>(out)[index] = uint16_t(std::nearbyint(v * scale)); break;
            case DType::f32: static_cast<float*>(out)[index] = v; break;
          }
        }
      }
}

}  // namespace srgan_fast::reference
