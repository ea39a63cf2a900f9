// The fused ops of the generator, each holding its weights twice: as given (torch layout, for the reference
// path) and packed for the fast kernels. run() takes the kernel table of a path, or null for the reference.
#pragma once

#include <utility>
#include <vector>

#include "ops/cpu/kernels.h"
#include "ops/cpu/reference.h"
#include "ops/packing.h"
#include "ops/packing_int8.h"

namespace srgan_fast {

// One conv's parameters in torch layout, plus its PReLU slopes if it has one (else empty).
struct ConvTensors {
  int cout = 0, cin = 0, k = 0;
  std::vector<float> weight;  // [cout][cin][k][k]
  std::vector<float> bias;    // [cout]
  std::vector<float> alpha;   // [cout], [cout / 4] after a pixel shuffle, or empty
  reference::RawConv raw() const { return {weight.data(), bias.data(), cout, cin, k}; }
};

// head: k x k conv (k odd, <= 9) 3 -> C + bias + PReLU, with the image -> float conversion fused in.
class HeadOp {
 public:
  explicit HeadOp(ConvTensors t);
  int out_channels() const { return packed_.c; }
  int in_channels() const { return packed_.cin; }
  void run(const cpu::CpuKernels* kernels, const void* image, DType dtype, int n, int h, int w,
           const FeatureMap& out, const FeatureMap& out_copy, const ExecContext& ctx) const;

 private:
  ConvTensors t_;
  HeadWeights packed_;
};

// What a layer fuses around its conv besides the epilogue's kind: the input's nearest upsampling, and the
// scales of its residual and of an outer residual (ESRGAN: 0.2 * block + input, at two levels).
struct ConvFusion {
  int upsample = 1;
  float skip_scale = 1.f, outer_scale = 1.f;
};

// A 3x3 conv with its epilogue (see Epilogue); with bias_add_skip, out may alias skip (updated in place), and
// outer_skip (when set) is added after the skip, as Conv3x3Params says.
// out_bf16 (bf16 precision only; the shuffle epilogue, or bias_prelu where runs_bf16_maps): store the result
// there as bf16 instead of to out; in_bf16 (where runs_bf16_maps): read the input from there instead of in.
class Conv3x3Op {
 public:
  Conv3x3Op(ConvTensors t, Epilogue epilogue, bool with_bf16, ConvFusion fusion = {});
  int in_channels() const { return packed_.cin; }
  int out_channels() const { return packed_.cout; }
  PackedConv3x3 packed() const { return packed_.view(); }  // for a fused op running several convs
  void run(const cpu::CpuKernels* kernels, Precision precision, const FeatureMap& in, const FeatureMap& skip,
           const FeatureMap& out, const ExecContext& ctx, const FeatureMapBf16& out_bf16 = {},
           const FeatureMap& outer_skip = {}, const FeatureMapBf16& in_bf16 = {}) const;
  // Whether this conv reads and writes bf16 maps on these kernels (CpuKernels::conv3x3_bf16_maps).
  bool runs_bf16_maps(const cpu::CpuKernels* kernels) const {
    return kernels && kernels->conv3x3_bf16_maps && kernels->conv3x3_bf16_maps(packed_.view());
  }

 private:
  ConvTensors t_;
  Epilogue epilogue_;
  ConvFusion fusion_;
  Conv3x3Weights packed_;
};

// A 3x3 conv in int8 (see PackedConv3x3Int8), built for the QuantCodes of the map it reads. The caller sets the
// maps of p (input codes, skip, destinations); the op adds its weights and epilogue.
class Conv3x3Int8Op {
 public:
  Conv3x3Int8Op(const ConvTensors& t, Epilogue epilogue, const QuantCodes& input, int weight_max, bool winograd);
  int in_channels() const { return packed_.cin; }
  int out_channels() const { return packed_.cout; }
  void run(const cpu::CpuKernels* kernels, Conv3x3Int8Params p, const ExecContext& ctx) const;

 private:
  Epilogue epilogue_;
  Conv3x3Int8Weights packed_;
};

// The residual block, x <- x + bias2 + conv2(prelu(conv1(x) + bias1)), updating x in place through tmp.
class ResidualBlockOp {
 public:
  ResidualBlockOp(ConvTensors conv1, ConvTensors conv2, bool with_bf16)
      : conv1_(std::move(conv1), Epilogue::bias_prelu, with_bf16),
        conv2_(std::move(conv2), Epilogue::bias_add_skip, with_bf16) {}
  void run(const cpu::CpuKernels* kernels, Precision precision, const FeatureMap& x, const FeatureMap& tmp,
           const ExecContext& ctx) const {
    conv1_.run(kernels, precision, x, FeatureMap{}, tmp, ctx);
    conv2_.run(kernels, precision, tmp, x, x, ctx);
  }

 private:
  Conv3x3Op conv1_, conv2_;
};

// tail: k x k conv C -> 3 + bias, then clamp, scale, round and store in the image dtype: 9x9 on every path, 3x3
// only where the path has CpuKernels::tail_3x3 (with_bf16). In bf16 the input is read from in_bf16 (channel
// stride bf16_channels()), in fp32 and on the reference path from in.
class TailOp {
 public:
  TailOp(ConvTensors t, bool with_bf16);
  int in_channels() const { return packed_.c; }
  int bf16_channels() const { return packed_.c_bf16; }
  void run(const cpu::CpuKernels* kernels, Precision precision, const FeatureMap& in,
           const FeatureMapBf16& in_bf16, void* out, DType dtype, const ExecContext& ctx) const;

 private:
  ConvTensors t_;
  TailWeights packed_;
};

}  // namespace srgan_fast
