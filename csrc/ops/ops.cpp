#include "ops/ops.h"

#include <stdexcept>
#include <utility>

namespace srgan_fast {

HeadOp::HeadOp(ConvTensors t)
    : t_(std::move(t)), packed_(pack_head(t_.weight.data(), t_.bias.data(), t_.alpha.data(), t_.cout)) {}

void HeadOp::run(const cpu::CpuKernels* kernels, const void* image, DType dtype, int n, int h, int w,
                 const FeatureMap& out, const FeatureMap& out_copy, const ExecContext& ctx) const {
  if (!kernels) return reference::head(image, dtype, n, h, w, t_.raw(), t_.alpha.data(), out, out_copy);
  HeadParams p;
  p.image = image, p.dtype = dtype, p.n = n, p.h = h, p.w = w;
  p.weight = packed_.weight.data(), p.bias = packed_.bias.data(), p.alpha = packed_.alpha.data();
  p.out = out, p.out_copy = out_copy;
  kernels->head(p, ctx);
}

Conv3x3Op::Conv3x3Op(ConvTensors t, Epilogue epilogue, bool with_bf16)
    : t_(std::move(t)), epilogue_(epilogue),
      packed_(pack_conv3x3(t_.weight.data(), t_.bias.data(), t_.alpha.empty() ? nullptr : t_.alpha.data(),
                           t_.cout, t_.cin, epilogue == Epilogue::bias_shuffle_prelu, with_bf16)) {}

void Conv3x3Op::run(const cpu::CpuKernels* kernels, Precision precision, const FeatureMap& in,
                    const FeatureMap& skip, const FeatureMap& out, const ExecContext& ctx) const {
  if (!kernels) return reference::conv3x3(in, t_.raw(), t_.alpha.data(), epilogue_, skip, out);
  const PackedConv3x3 weights = packed_.view();
  Conv3x3Params p;
  p.in = in, p.out = out, p.skip = skip, p.weights = &weights, p.epilogue = epilogue_;
  if (precision == Precision::bf16) {
    if (!kernels->conv3x3_bf16 || !weights.u_bf16)
      throw std::logic_error("bf16 conv3x3 requested without bf16 kernels or packed bf16 weights");
    kernels->conv3x3_bf16(p, ctx);
  } else {
    kernels->conv3x3(p, ctx);
  }
}

TailOp::TailOp(ConvTensors t) : t_(std::move(t)), packed_(pack_tail(t_.weight.data(), t_.bias.data(), t_.cin)) {}

void TailOp::run(const cpu::CpuKernels* kernels, const FeatureMap& in, void* out, DType dtype,
                 const ExecContext& ctx) const {
  if (!kernels) return reference::tail(in, t_.raw(), out, dtype);
  TailParams p;
  p.in = in, p.weight = packed_.weight.data(), p.out = out, p.dtype = dtype;
  for (int k = 0; k < 3; ++k) p.bias[k] = packed_.bias[k];
  kernels->tail(p, ctx);
}

}  // namespace srgan_fast
