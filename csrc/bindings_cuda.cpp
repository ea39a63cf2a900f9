#include "bindings_cuda.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include "bindings_common.h"
#include "engine/cuda/cuda_engine.h"
#include "ops/cuda/residual_block.h"

namespace py = pybind11;

namespace srgan_fast {
namespace {

using cuda::InputKind;
using cuda::OutputKind;

// The tensor-core kernels store activations in 16 bits: fp16 or bf16.
Precision parse_cuda_precision(const std::string& name) {
  const Precision precision = parse_precision(name);
  if (precision != Precision::fp16 && precision != Precision::bf16)
    throw std::invalid_argument("CUDA engine: precision must be 'fp16' or 'bf16', got '" + name + "'");
  return precision;
}

InputKind parse_input_kind(const std::string& name) {
  if (name == "storage") return InputKind::kStorage;
  if (name == "uint8") return InputKind::kUint8;
  if (name == "uint16") return InputKind::kUint16;
  if (name == "float32") return InputKind::kFloat32;
  throw std::invalid_argument("input kind must be storage, uint8, uint16 or float32, got '" + name + "'");
}

OutputKind parse_output_kind(const std::string& name) {
  if (name == "storage") return OutputKind::kStorage;
  if (name == "storage_shuffle2") return OutputKind::kStorageShuffle2;
  if (name == "uint8") return OutputKind::kUint8;
  if (name == "uint16") return OutputKind::kUint16;
  if (name == "float32") return OutputKind::kFloat32;
  if (name == "float32_unclamped") return OutputKind::kFloat32Unclamped;
  throw std::invalid_argument("output kind must be storage, storage_shuffle2, uint8, uint16, float32 or "
                              "float32_unclamped, got '" + name + "'");
}

std::string shape_text(const py::array& a) {
  std::ostringstream text;
  text << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) text << (i ? ", " : "") << a.shape(i);
  text << (a.ndim() == 1 ? ",)" : ")");
  return text.str();
}

// The image dtype of a tiles array, checked: [N, h, w, 3] C-contiguous uint8 / uint16 / float32.
std::string tiles_dtype(const py::array& tiles) {
  if (tiles.ndim() != 4 || tiles.shape(3) != 3)
    throw std::invalid_argument("CUDA engine: expected tiles of shape [N, h, w, 3], got shape " + shape_text(tiles));
  if (!(tiles.flags() & py::array::c_style))
    throw std::invalid_argument("CUDA engine: expected C-contiguous tiles, got a strided array");
  if (py::isinstance<py::array_t<uint8_t>>(tiles)) return "uint8";
  if (py::isinstance<py::array_t<uint16_t>>(tiles)) return "uint16";
  if (py::isinstance<py::array_t<float>>(tiles)) return "float32";
  throw std::invalid_argument("CUDA engine: expected uint8, uint16 or float32 tiles, got " +
                              std::string(py::str(tiles.dtype())));
}

template <typename T>
const T* pointer(uintptr_t address) { return reinterpret_cast<const T*>(address); }

py::dict report_dict(const cuda::SelfCheckReport& r) {
  py::dict d;
  d["height"] = r.height;
  d["width"] = r.width;
  d["max_abs_error"] = r.max_abs_error;
  d["rms_error"] = r.rms_error;
  d["max_abs_reference"] = r.max_abs_reference;
  d["rms_reference"] = r.rms_reference;
  d["max_abs_tolerance"] = r.max_abs_tolerance;
  d["rms_tolerance"] = r.rms_tolerance;
  d["passed"] = r.passed;
  d["text"] = r.describe();
  return d;
}

void bind_ops(py::module_& ops) {
  ops.def(
      "conv_mma",
      [](const std::string& precision, uintptr_t input, uintptr_t weights, uintptr_t bias, uintptr_t alpha,
         uintptr_t residual, uintptr_t output, int batch, int height, int width, int in_channels, int cin_padded,
         int cout, int cout_padded, int ksize, const std::string& input_kind, const std::string& output_kind) {
        cuda::ConvParams p{};
        p.input = pointer<void>(input);
        p.weights = pointer<void>(weights);
        p.bias = pointer<float>(bias);
        p.alpha = pointer<float>(alpha);
        p.residual = pointer<void>(residual);
        p.output = reinterpret_cast<void*>(output);
        p.batch = batch;
        p.height = height;
        p.width = width;
        p.in_channels = in_channels;
        p.cin_padded = cin_padded;
        p.cout = cout;
        p.cout_padded = cout_padded;
        p.ksize = ksize;
        p.input_kind = parse_input_kind(input_kind);
        p.output_kind = parse_output_kind(output_kind);
        cuda::conv_mma(p, parse_cuda_precision(precision), nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
      },
      "The tensor-core conv on device pointers (0 = none); synchronous. See csrc/ops/cuda/conv_params.h.",
      py::arg("precision"), py::arg("input"), py::arg("weights"), py::arg("bias"), py::arg("alpha"),
      py::arg("residual"), py::arg("output"), py::arg("batch"), py::arg("height"), py::arg("width"),
      py::arg("in_channels"), py::arg("cin_padded"), py::arg("cout"), py::arg("cout_padded"), py::arg("ksize"),
      py::arg("input_kind"), py::arg("output_kind"));
  ops.def(
      "residual_block_fused",
      [](const std::string& precision, uintptr_t input, uintptr_t weights1, uintptr_t bias1, uintptr_t alpha1,
         uintptr_t weights2, uintptr_t bias2, uintptr_t output, int batch, int height, int width, int channels) {
        const cuda::ResidualBlockParams p{pointer<void>(input), pointer<void>(weights1), pointer<float>(bias1),
                                          pointer<float>(alpha1), pointer<void>(weights2), pointer<float>(bias2),
                                          reinterpret_cast<void*>(output), batch, height, width, channels};
        cuda::residual_block_fused(p, parse_cuda_precision(precision), nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
      },
      "The fused residual block on device pointers; synchronous. See csrc/ops/cuda/residual_block.h.",
      py::arg("precision"), py::arg("input"), py::arg("weights1"), py::arg("bias1"), py::arg("alpha1"),
      py::arg("weights2"), py::arg("bias2"), py::arg("output"), py::arg("batch"), py::arg("height"),
      py::arg("width"), py::arg("channels"));
  ops.def(
      "reference_conv2d",
      [](uintptr_t input, uintptr_t weights, uintptr_t bias, uintptr_t alpha, uintptr_t residual, uintptr_t output,
         int batch, int height, int width, int cin, int cout, int ksize) {
        cuda::ReferenceConvParams p{pointer<float>(input), pointer<float>(weights), pointer<float>(bias),
                                    pointer<float>(alpha), pointer<float>(residual), reinterpret_cast<float*>(output),
                                    batch, height, width, cin, cout, ksize};
        cuda::reference_conv2d(p, nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
      },
      "fp32 reference conv (torch weight layout) on device pointers; synchronous.", py::arg("input"),
      py::arg("weights"), py::arg("bias"), py::arg("alpha"), py::arg("residual"), py::arg("output"), py::arg("batch"),
      py::arg("height"), py::arg("width"), py::arg("cin"), py::arg("cout"), py::arg("ksize"));
  ops.def(
      "reference_pixel_shuffle_prelu",
      [](uintptr_t input, uintptr_t alpha, uintptr_t output, int batch, int height, int width, int channels,
         int factor) {
        cuda::reference_pixel_shuffle_prelu(pointer<float>(input), pointer<float>(alpha),
                                            reinterpret_cast<float*>(output), batch, height, width, channels, factor,
                                            nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
      },
      py::arg("input"), py::arg("alpha"), py::arg("output"), py::arg("batch"), py::arg("height"), py::arg("width"),
      py::arg("channels"), py::arg("factor") = 2);
  ops.def(
      "image_store",
      [](uintptr_t features, uintptr_t image, uintptr_t output, int batch, int height, int width, int scale,
         int shuffle, const std::string& skip, const std::string& image_kind, const std::string& output_kind) {
        const cuda::ImageStoreParams p{pointer<float>(features), pointer<void>(image), reinterpret_cast<void*>(output),
                                       batch, height, width, scale, shuffle, parse_image_skip(skip),
                                       parse_input_kind(image_kind), parse_output_kind(output_kind)};
        cuda::image_store(p, nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
      },
      "PixelShuffle(shuffle)(features) + the image upsampled x scale (skip: none | nearest | bilinear), stored as "
      "output_kind: the CUDA engine's last step after a last conv to a float32 map.",
      py::arg("features"), py::arg("image"), py::arg("output"), py::arg("batch"), py::arg("height"), py::arg("width"),
      py::arg("scale"), py::arg("shuffle"), py::arg("skip"), py::arg("image_kind"), py::arg("output_kind"));
  ops.def(
      "reference_input_to_float",
      [](uintptr_t input, const std::string& kind, uintptr_t output, int64_t count) {
        cuda::reference_input_to_float(pointer<void>(input), parse_input_kind(kind), reinterpret_cast<float*>(output),
                                       count, nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
      },
      py::arg("input"), py::arg("kind"), py::arg("output"), py::arg("count"));
  ops.def(
      "reference_output_from_float",
      [](uintptr_t input, const std::string& kind, uintptr_t output, int64_t count) {
        cuda::reference_output_from_float(pointer<float>(input), parse_output_kind(kind),
                                          reinterpret_cast<void*>(output), count, nullptr);
        CUDA_CHECK(cudaDeviceSynchronize());
      },
      py::arg("input"), py::arg("kind"), py::arg("output"), py::arg("count"));
  ops.def(
      "pack_conv_weights",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> weights, int cin_padded, int cout_padded,
         const std::string& precision, bool subpixel_major) {
        if (weights.ndim() != 4 || weights.shape(2) != weights.shape(3))
          throw std::invalid_argument("pack_conv_weights: expected [cout, cin, k, k], got shape " +
                                      shape_text(weights));
        const int cout = int(weights.shape(0)), cin = int(weights.shape(1)), k = int(weights.shape(2));
        const auto packed = cuda::pack_conv_weights(weights.data(), cout, cin, k, cin_padded, cout_padded,
                                                    parse_cuda_precision(precision), subpixel_major);
        py::array_t<uint16_t> result({py::ssize_t(cout_padded), py::ssize_t(k * k), py::ssize_t(cin_padded)});
        std::copy(packed.begin(), packed.end(), result.mutable_data());
        return result;
      },
      "torch [cout, cin, k, k] float32 -> [cout_padded, k*k, cin_padded] fp16/bf16 bits as uint16; "
      "subpixel_major: the order the PixelShuffle(2) store (output_kind storage_shuffle2) expects.",
      py::arg("weights"), py::arg("cin_padded"), py::arg("cout_padded"), py::arg("precision"),
      py::arg("subpixel_major") = false);
}

void bind_engine(py::module_& m) {
  py::class_<cuda::CudaEngine>(m, "CudaEngine", "The generator on one CUDA GPU (see csrc/engine/cuda/cuda_engine.h).")
      .def(py::init([](const py::list& layers, int scale, const std::string& image_skip, const std::string& precision,
                       int device, int batch_size, bool use_graphs, bool fuse_residual_blocks,
                       const std::optional<py::list>& reference_layers) {
             EngineOptions options;
             options.precision = parse_cuda_precision(precision);
             options.device = device;
             options.batch_size = batch_size;
             options.use_graphs = use_graphs;
             options.fuse_residual_blocks = fuse_residual_blocks;
             const NetworkSpec network = bindings::network_from_records(layers, scale, image_skip);
             if (!reference_layers)
               return std::make_unique<cuda::CudaEngine>(network, options);
             const NetworkSpec reference = bindings::network_from_records(*reference_layers, scale, image_skip);
             return std::make_unique<cuda::CudaEngine>(network, options, &reference);
           }),
           py::arg("layers"), py::arg("scale"), py::arg("image_skip"), py::arg("precision"), py::arg("device") = 0,
           py::arg("batch_size") = 8, py::arg("use_graphs") = true, py::arg("fuse_residual_blocks") = false,
           py::arg("reference_layers") = py::none())
      .def(
          "run",
          [](cuda::CudaEngine& engine, const py::array& tiles) {
            const std::string dtype = tiles_dtype(tiles);
            const int n = int(tiles.shape(0)), h = int(tiles.shape(1)), w = int(tiles.shape(2));
            const int s = engine.scale();
            py::array result(tiles.dtype(), {py::ssize_t(n), py::ssize_t(s * h), py::ssize_t(s * w), py::ssize_t(3)});
            const void* in = tiles.data();
            void* out = result.mutable_data();
            {
              py::gil_scoped_release release;
              engine.run_host(in, out, n, h, w, parse_input_kind(dtype), parse_output_kind(dtype));
            }
            return result;
          },
          "[N, h, w, 3] uint8/uint16/float32 host tiles -> [N, 4h, 4w, 3] same dtype, rounded and clamped.",
          py::arg("tiles"))
      .def(
          "run_device",
          [](cuda::CudaEngine& engine, uintptr_t input, uintptr_t output, int n, int h, int w, const std::string& dtype,
             uintptr_t stream) {
            py::gil_scoped_release release;
            engine.run_device(pointer<void>(input), reinterpret_cast<void*>(output), n, h, w, parse_input_kind(dtype),
                              parse_output_kind(dtype), reinterpret_cast<cudaStream_t>(stream));
          },
          "Device pointers [n, h, w, 3] -> [n, 4h, 4w, 3] of dtype; stream as in __cuda_array_interface__ "
          "(1 legacy default, 2 per-thread, else a cudaStream_t; 0: block until done).",
          py::arg("input"), py::arg("output"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("dtype"),
          py::arg("stream") = 0)
      .def(
          "run_reference",
          [](cuda::CudaEngine& engine, const py::array& tiles) {
            const std::string dtype = tiles_dtype(tiles);
            const int n = int(tiles.shape(0)), h = int(tiles.shape(1)), w = int(tiles.shape(2));
            const void* input = tiles.data();  // read while the GIL is held
            std::vector<float> values;
            {
              py::gil_scoped_release release;
              values = engine.run_reference(input, n, h, w, parse_input_kind(dtype));
            }
            const int s = engine.scale();
            py::array_t<float> result({py::ssize_t(n), py::ssize_t(s * h), py::ssize_t(s * w), py::ssize_t(3)});
            std::copy(values.begin(), values.end(), result.mutable_data());
            return result;
          },
          "The fp32 reference kernels on host tiles: [N, 4h, 4w, 3] float32, unclamped.", py::arg("tiles"))
      .def(
          "self_check",
          [](cuda::CudaEngine& engine, int h, int w) {
            cuda::SelfCheckReport report;
            {
              py::gil_scoped_release release;
              report = engine.self_check(h, w);
            }
            return report_dict(report);
          },
          "Fast path vs reference kernels on a random h x w tile; returns the errors and whether they pass.",
          py::arg("height"), py::arg("width"))
      .def(
          "profile",
          [](cuda::CudaEngine& engine, int n, int h, int w, int repeats) {
            cuda::ProfileReport report;
            {
              py::gil_scoped_release release;
              report = engine.profile(n, h, w, repeats);
            }
            py::list layers;
            for (const auto& layer : report.layers) {
              py::dict d;
              d["name"] = layer.name;
              d["ms"] = layer.ms;
              d["tflops"] = layer.ms > 0 ? layer.flops / (layer.ms * 1e9) : 0.0;
              layers.append(d);
            }
            py::dict d;
            d["n"] = report.n;
            d["h"] = report.h;
            d["w"] = report.w;
            d["forward_ms"] = report.forward_ms;
            d["forward_tflops"] = report.forward_ms > 0 ? report.forward_flops / (report.forward_ms * 1e9) : 0.0;
            d["layers"] = layers;
            return d;
          },
          "Mean ms (and TFLOP/s of the real channels) of the whole forward (graph replay when graphs are on) and "
          "of each layer launched eagerly, over `repeats` runs of n uint8 h x w tiles.",
          py::arg("n"), py::arg("h"), py::arg("w"), py::arg("repeats") = 20)
      .def_property_readonly("device_name", &cuda::CudaEngine::device_name)
      .def_property_readonly("device", &cuda::CudaEngine::device);
}

}  // namespace

void bind_cuda_engine(py::module_& m) {
  m.def("cuda_device_count", [] {
    int count = 0;
    CUDA_CHECK(cudaGetDeviceCount(&count));
    return count;
  }, "Number of CUDA devices; raises RuntimeError naming the CUDA error when the driver is missing or broken.");
  m.def("cuda_driver_version", [] {
    int version = 0;
    CUDA_CHECK(cudaDriverGetVersion(&version));
    return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
  }, "The CUDA version the installed driver supports, e.g. '13.0'.");
  m.def("cuda_device_name", [](int device) {
    cudaDeviceProp properties{};
    CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
    return std::string(properties.name) + " (sm_" + std::to_string(properties.major) +
           std::to_string(properties.minor) + ")";
  }, py::arg("device"));
  bind_engine(m);
  py::module_ ops = m.def_submodule("cuda_ops", "CUDA kernels on raw device pointers, for tests.");
  bind_ops(ops);
}

}  // namespace srgan_fast
