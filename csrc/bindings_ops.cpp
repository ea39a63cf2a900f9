// srgan_fast._C.ops: each fused op on its own, on NHWC float32 arrays with torch-layout weights, so that
// tests can compare every op and path with torch. The engine runs the same op objects.
#include <algorithm>

#include "bindings_common.h"
#include "ops/cpu/dispatch.h"
#include "ops/ops.h"

namespace srgan_fast::bindings {
namespace {

// A kernel path plus the scratch and feature-map buffers one op call needs.
struct OpCall {
  const cpu::CpuKernels* kernels = nullptr;
  Precision precision = Precision::fp32;
  ExecContext ctx;
  AlignedBuffer scratch;

  OpCall(const std::string& path, const std::string& precision_name, int threads, size_t scratch_per_thread) {
    precision = parse_precision(precision_name);
    kernels = cpu::kernels_for(cpu::resolve_path(path, precision));
    if (threads < 0) throw std::invalid_argument("threads must be >= 0, got " + std::to_string(threads));
    ctx.threads = std::max(1, threads);
    ctx.scratch_floats_per_thread = (scratch_per_thread + 15) / 16 * 16;
    scratch.reset_zero(ctx.threads * ctx.scratch_floats_per_thread);
    ctx.scratch = scratch.data();
  }
};

ConvTensors conv_from_arrays(const py::array& weight, const py::array& bias, const py::object& alpha, int cout,
                             int cin, int k, int slopes) {
  ConvTensors t;
  t.cout = cout, t.cin = cin, t.k = k;
  const std::vector<int64_t> wshape{cout, cin, k, k}, bshape{cout}, ashape{slopes};
  t.weight = tensor_from_array(weight, "weight", &wshape);
  t.bias = tensor_from_array(bias, "bias", &bshape);
  if (!alpha.is_none()) t.alpha = tensor_from_array(alpha, "alpha", &ashape);
  return t;
}

// A zero-haloed copy of an [n, h, w, c] float32 array, with channels padded to `padded`.
FeatureMap load_features(const py::array& x, int padded, AlignedBuffer& buffer) {
  if (!py::isinstance<py::array_t<float>>(x))
    throw std::invalid_argument("x: expected dtype float32, got " + dtype_name(x));
  check_nhwc(x, -1, "x");
  const int n = int(x.shape(0)), h = int(x.shape(1)), w = int(x.shape(2)), c = int(x.shape(3));
  buffer.reset_zero(feature_map_floats(n, h, w, padded));
  const FeatureMap f = make_feature_map(buffer.data(), n, h, w, padded);
  const float* src = static_cast<const float*>(x.data());
  for (int b = 0; b < n; ++b)
    for (int y = 0; y < h; ++y)
      for (int i = 0; i < w; ++i) std::copy_n(src + ((size_t(b) * h + y) * w + i) * c, c, f.at(b, y, i));
  return f;
}

py::array store_features(const FeatureMap& f, int c) {
  py::array_t<float> out(std::vector<py::ssize_t>{f.n, f.h, f.w, c});
  float* dst = out.mutable_data();
  for (int b = 0; b < f.n; ++b)
    for (int y = 0; y < f.h; ++y)
      for (int i = 0; i < f.w; ++i) std::copy_n(f.at(b, y, i), c, dst + ((size_t(b) * f.h + y) * f.w + i) * c);
  return out;
}

void check_channels(const py::array& x, int c, const char* what) {
  if (x.ndim() == 4 && x.shape(3) != c)
    throw std::invalid_argument(std::string(what) + ": expected " + std::to_string(c) +
                                " channels to match the weights, got shape " + shape_of(x));
}

py::array head(const py::array& image, const py::array& weight, const py::array& bias, const py::array& alpha,
               const std::string& path, int threads) {
  const DType dtype = image_dtype(image, "image");
  check_nhwc(image, 3, "image");
  const int c = weight.ndim() == 4 ? int(weight.shape(0)) : -1;
  const HeadOp op(conv_from_arrays(weight, bias, alpha, c, 3, 9, c));
  const int n = int(image.shape(0)), h = int(image.shape(1)), w = int(image.shape(2));
  OpCall call(path, "fp32", threads, cpu::head_scratch_floats(w, 3));
  AlignedBuffer out_buffer;
  out_buffer.reset_zero(feature_map_floats(n, h, w, op.out_channels()));
  const FeatureMap out = make_feature_map(out_buffer.data(), n, h, w, op.out_channels());
  op.run(call.kernels, image.data(), dtype, n, h, w, out, FeatureMap{}, call.ctx);
  return store_features(out, c);
}

py::array residual_block(const py::array& x, const py::array& w1, const py::array& b1, const py::array& a1,
                         const py::array& w2, const py::array& b2, const std::string& path,
                         const std::string& precision, int threads) {
  const int c = w1.ndim() == 4 ? int(w1.shape(0)) : -1;
  check_channels(x, c, "x");
  const ResidualBlockOp op(conv_from_arrays(w1, b1, a1, c, c, 3, c), conv_from_arrays(w2, b2, py::none(), c, c, 3, 0),
                           precision == "bf16");
  const int padded = round_up(c, kChannelAlign);
  AlignedBuffer x_buffer, tmp_buffer;
  const FeatureMap fx = load_features(x, padded, x_buffer);
  tmp_buffer.reset_zero(feature_map_floats(fx.n, fx.h, fx.w, padded));
  const FeatureMap tmp = make_feature_map(tmp_buffer.data(), fx.n, fx.h, fx.w, padded);
  OpCall call(path, precision, threads, cpu::conv3x3_scratch_floats(padded, padded));
  op.run(call.kernels, call.precision, fx, tmp, call.ctx);
  return store_features(fx, c);
}

py::array conv3x3_add(const py::array& x, const py::array& skip, const py::array& weight, const py::array& bias,
                      const std::string& path, const std::string& precision, int threads) {
  const int c = weight.ndim() == 4 ? int(weight.shape(0)) : -1;
  check_channels(x, c, "x");
  check_channels(skip, c, "skip");
  if (x.ndim() != skip.ndim() || !std::equal(x.shape(), x.shape() + x.ndim(), skip.shape()))
    throw std::invalid_argument("skip: expected the shape of x " + shape_of(x) + ", got " + shape_of(skip));
  const Conv3x3Op op(conv_from_arrays(weight, bias, py::none(), c, c, 3, 0), Epilogue::bias_add_skip,
                     precision == "bf16");
  const int padded = round_up(c, kChannelAlign);
  AlignedBuffer x_buffer, skip_buffer;
  const FeatureMap fx = load_features(x, padded, x_buffer);
  const FeatureMap fs = load_features(skip, padded, skip_buffer);
  OpCall call(path, precision, threads, cpu::conv3x3_scratch_floats(padded, padded));
  op.run(call.kernels, call.precision, fx, fs, fs, call.ctx);
  return store_features(fs, c);
}

py::array upsampler(const py::array& x, const py::array& weight, const py::array& bias, const py::array& alpha,
                    const std::string& path, const std::string& precision, int threads) {
  const int c = weight.ndim() == 4 ? int(weight.shape(1)) : -1;
  check_channels(x, c, "x");
  const Conv3x3Op op(conv_from_arrays(weight, bias, alpha, 4 * c, c, 3, c), Epilogue::bias_shuffle_prelu,
                     precision == "bf16");
  const int padded = round_up(c, kChannelAlign);
  AlignedBuffer x_buffer, out_buffer;
  const FeatureMap fx = load_features(x, padded, x_buffer);
  out_buffer.reset_zero(feature_map_floats(fx.n, 2 * fx.h, 2 * fx.w, padded));
  const FeatureMap out = make_feature_map(out_buffer.data(), fx.n, 2 * fx.h, 2 * fx.w, padded);
  OpCall call(path, precision, threads, cpu::conv3x3_scratch_floats(padded, 4 * padded));
  op.run(call.kernels, call.precision, fx, FeatureMap{}, out, call.ctx);
  return store_features(out, c);
}

py::array tail(const py::array& x, const py::array& weight, const py::array& bias, const std::string& dtype_name,
               const std::string& path, const std::string& precision, int threads) {
  const int c = weight.ndim() == 4 ? int(weight.shape(1)) : -1;
  check_channels(x, c, "x");
  AlignedBuffer x_buffer, bf16_buffer;
  const FeatureMap fx = load_features(x, round_up(c, kChannelAlign), x_buffer);
  OpCall call(path, precision, threads, cpu::tail_scratch_floats(round_up(c, kChannelAlign)));
  // As in the engine, a path without a bf16-input tail (the amx paths) reads the fp32 map at bf16 too.
  const bool bf16 = call.precision == Precision::bf16 && call.kernels;
  const bool bf16_input = bf16 && call.kernels->tail_bf16;
  const TailOp op(conv_from_arrays(weight, bias, py::none(), 3, c, 9, 0), bf16);
  DType dtype;
  if (dtype_name == "uint8") dtype = DType::u8;
  else if (dtype_name == "uint16") dtype = DType::u16;
  else if (dtype_name == "float32") dtype = DType::f32;
  else throw std::invalid_argument("dtype: expected 'uint8', 'uint16' or 'float32', got '" + dtype_name + "'");
  FeatureMapBf16 fb;
  if (bf16_input) {  // the engine's upsampler stores this map; here it is rounded from x
    bf16_buffer.reset_zero((feature_map_floats(fx.n, fx.h, fx.w, op.bf16_channels()) + 1) / 2);
    fb = make_feature_map(reinterpret_cast<uint16_t*>(bf16_buffer.data()), fx.n, fx.h, fx.w, op.bf16_channels());
    for (int b = 0; b < fx.n; ++b)
      for (int y = 0; y < fx.h; ++y)
        for (int i = 0; i < fx.w; ++i)
          for (int k = 0; k < c; ++k) fb.at(b, y, i)[k] = float_to_bf16(fx.at(b, y, i)[k]);
  }
  py::array out(numpy_dtype(dtype), std::vector<py::ssize_t>{fx.n, fx.h, fx.w, 3});
  op.run(call.kernels, bf16_input ? Precision::bf16 : Precision::fp32, fx, fb, out.mutable_data(), dtype, call.ctx);
  return out;
}

}  // namespace

void bind_ops(py::module_& m) {
  using py::arg;
  m.def("head", &head, arg("image"), arg("weight"), arg("bias"), arg("alpha"), arg("path") = "auto",
        arg("threads") = 1, "image [N,h,w,3] u8/u16/f32; weight [C,3,9,9] -> prelu(conv9x9(image)+bias) [N,h,w,C]");
  m.def("residual_block", &residual_block, arg("x"), arg("w1"), arg("b1"), arg("alpha"), arg("w2"), arg("b2"),
        arg("path") = "auto", arg("precision") = "fp32", arg("threads") = 1,
        "x [N,h,w,C] -> x + conv2(prelu(conv1(x)+b1))+b2");
  m.def("conv3x3_add", &conv3x3_add, arg("x"), arg("skip"), arg("weight"), arg("bias"), arg("path") = "auto",
        arg("precision") = "fp32", arg("threads") = 1, "skip + conv3x3(x) + bias (the trunk conv)");
  m.def("upsampler", &upsampler, arg("x"), arg("weight"), arg("bias"), arg("alpha"), arg("path") = "auto",
        arg("precision") = "fp32", arg("threads") = 1,
        "x [N,h,w,C]; weight [4C,C,3,3] -> prelu(pixel_shuffle(conv3x3(x)+bias, 2)) [N,2h,2w,C]");
  m.def("tail", &tail, arg("x"), arg("weight"), arg("bias"), arg("dtype") = "float32", arg("path") = "auto",
        arg("precision") = "fp32", arg("threads") = 1, "x [N,h,w,C]; weight [3,C,9,9] -> clamp(conv9x9(x)+bias) in dtype [N,h,w,3]");
}

}  // namespace srgan_fast::bindings
