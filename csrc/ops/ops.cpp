#include "ops/ops.h"

#include <stdexcept>
#include <utility>

namespace srgan_fast {

HeadOp::HeadOp(ConvTensors t)
    : t_(std::move(t)),
      packed_(pack_head(t_.weight.data(), t_.bias.data(), t_.alpha.data(), t_.cout, t_.cin, t_.k)) {}

void HeadOp::run(const cpu::CpuKernels* kernels, const void* image, DType dtype, int n, int h, int w,
                 const FeatureMap& out, const FeatureMap& out_copy, const ExecContext& ctx) const {
  if (!kernels) return reference::head(image, dtype, n, h, w, t_.raw(), t_.alpha.data(), out, out_copy);
  HeadParams p;
  p.image = image, p.dtype = dtype, p.n = n, p.h = h, p.w = w;
  p.cout = packed_.c, p.cin = packed_.cin, p.k = packed_.k;
  p.weight = packed_.weight.data(), p.bias = packed_.bias.data(), p.alpha = packed_.alpha.data();
  p.out = out, p.out_copy = out_copy;
  kernels->head(p, ctx);
}

Conv3x3Op::Conv3x3Op(ConvTensors t, Epilogue epilogue, bool with_bf16, ConvFusion fusion)
    : t_(std::move(t)), epilogue_(epilogue), fusion_(fusion),
      packed_(pack_conv3x3(t_.weight.data(), t_.bias.data(), t_.alpha.empty() ? nullptr : t_.alpha.data(),
                           t_.cout, t_.cin, epilogue == Epilogue::bias_shuffle_prelu, with_bf16,
                           fusion.upsample == 2)) {}

void Conv3x3Op::run(const cpu::CpuKernels* kernels, Precision precision, const FeatureMap& in,
                    const FeatureMap& skip, const FeatureMap& out, const ExecContext& ctx,
                    const FeatureMapBf16& out_bf16, const FeatureMap& outer_skip, const FeatureMapBf16& in_bf16) const {
  Conv3x3Params p;
  p.in = in, p.upsample = fusion_.upsample, p.out = out, p.skip = skip, p.epilogue = epilogue_;
  p.skip_scale = fusion_.skip_scale, p.outer_skip = outer_skip, p.outer_scale = fusion_.outer_scale;
  if (in_bf16.data) p.in_bf16 = in_bf16, p.in.n = in_bf16.n, p.in.h = in_bf16.h, p.in.w = in_bf16.w;
  if (!kernels) return reference::conv3x3(p, t_.raw(), t_.alpha.data());
  const PackedConv3x3 weights = packed_.view();
  p.weights = &weights;
  const bool bf16_maps = runs_bf16_maps(kernels);
  const bool bf16_out = epilogue_ == Epilogue::bias_shuffle_prelu || (bf16_maps && epilogue_ == Epilogue::bias_prelu);
  if (out_bf16.data && (precision != Precision::bf16 || !bf16_out))
    throw std::logic_error("a bf16 destination is for an upsampler, or a bias_prelu conv on bf16 maps, at bf16");
  if (in_bf16.data && (precision != Precision::bf16 || !bf16_maps))
    throw std::logic_error("a bf16 source is only for a conv whose path reads bf16 maps, at bf16");
  p.out_bf16 = out_bf16;
  if (precision == Precision::bf16) {
    if (!kernels->conv3x3_bf16 || !weights.u_bf16)
      throw std::logic_error("bf16 conv3x3 requested without bf16 kernels or packed bf16 weights");
    kernels->conv3x3_bf16(p, ctx);
  } else {
    kernels->conv3x3(p, ctx);
  }
}

Conv3x3Int8Op::Conv3x3Int8Op(const ConvTensors& t, Epilogue epilogue, const QuantCodes& input, int weight_max,
                             bool winograd)
    : epilogue_(epilogue),
      packed_(pack_conv3x3_int8(t.weight.data(), t.bias.data(), t.alpha.empty() ? nullptr : t.alpha.data(), t.cout,
                                t.cin, epilogue == Epilogue::bias_shuffle_prelu, input, weight_max,
                                winograd)) {}

void Conv3x3Int8Op::run(const cpu::CpuKernels* kernels, Conv3x3Int8Params p, const ExecContext& ctx) const {
  if (!kernels || !kernels->conv3x3_int8) throw std::logic_error("int8 conv3x3 requested without int8 kernels");
  const PackedConv3x3Int8 weights = packed_.view();
  p.weights = &weights, p.epilogue = epilogue_;
  kernels->conv3x3_int8(p, ctx);
}

TailOp::TailOp(ConvTensors t, bool with_bf16)
    : t_(std::move(t)), packed_(pack_tail(t_.weight.data(), t_.bias.data(), t_.cin, t_.k, with_bf16)) {}

void TailOp::run(const cpu::CpuKernels* kernels, Precision precision, const FeatureMap& in,
                 const FeatureMapBf16& in_bf16, void* out, DType dtype, const ExecContext& ctx) const {
  if (!kernels) return reference::tail(in, t_.raw(), out, dtype);
  TailParams p;
  p.kernel = packed_.kernel;
  p.weight_winograd = packed_.weight_winograd.data();
  p.weight_tiles = packed_.weight_tiles.empty() ? nullptr : packed_.weight_tiles.data();
  p.out = out, p.dtype = dtype;
  for (int k = 0; k < 3; ++k) p.bias[k] = packed_.bias[k];
  if (p.kernel == 3 && (!kernels->tail_3x3 || !p.weight_tiles))
    throw std::logic_error("3x3 tail requested on a path without it or without its tiles' weights");
  if (precision != Precision::bf16) {
    p.in = in;
    return kernels->tail(p, ctx);
  }
  const bool bf16_weights = p.kernel == 3 ? p.weight_tiles != nullptr : !packed_.weight_bf16.empty();
  if (!kernels->tail_bf16 || !bf16_weights || in_bf16.c != packed_.c_bf16)
    throw std::logic_error("bf16 tail requested without bf16 kernels, bf16 weights or a matching bf16 input");
  p.in.n = in_bf16.n, p.in.h = in_bf16.h, p.in.w = in_bf16.w, p.in.c = packed_.c;  // the geometry; data: in_bf16
  p.in_bf16 = in_bf16, p.weight_bf16 = packed_.weight_bf16.data();
  kernels->tail_bf16(p, ctx);
}

}  // namespace srgan_fast
