// srgan_fast._C: only bindings. The engine is in engine/, the kernels in ops/.
#include <pybind11/stl.h>

#include <algorithm>
#include <thread>

#include "bindings_common.h"
#include "ops/cpu/cpu_features.h"
#include "engine/engine.h"

#ifdef SRGAN_FAST_WITH_CUDA
#include "bindings_cuda.h"
#endif

namespace srgan_fast::bindings {

void bind_ops(py::module_& ops);  // bindings_ops.cpp

namespace {

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    const size_t end = s.find(',', start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

py::dict build_info() {
  py::dict d;
  d["compiler"] = SRGAN_FAST_COMPILER;
  d["build_type"] = SRGAN_FAST_BUILD_TYPE;
  d["cpu_paths_compiled"] = split_csv(SRGAN_FAST_CPU_PATHS);
#ifdef SRGAN_FAST_OPENMP
  d["openmp"] = true;
#else
  d["openmp"] = false;
#endif
#ifdef SRGAN_FAST_WITH_CUDA
  d["cuda"] = true;
#else
  d["cuda"] = false;
#endif
  d["cuda_architectures"] = split_csv(SRGAN_FAST_CUDA_ARCHS);
  return d;
}

py::dict cpu_info() {
  const CpuFeatures& f = cpu_features();
  py::dict d;
  d["avx2_fma"] = f.avx2_fma;
  d["avx512"] = f.avx512;
  d["avx512_bf16"] = f.avx512_bf16;
  d["paths_fp32"] = cpu::available_paths(Precision::fp32);
  d["paths_bf16"] = cpu::available_paths(Precision::bf16);
  d["avx512_vnni"] = f.avx512_vnni;
  d["amx_int8"] = f.amx_int8;
  d["amx_bf16"] = f.amx_bf16;
  d["amx_missing"] = std::string(f.amx_missing);
  d["paths_int8"] = cpu::available_paths(Precision::int8);
  // The test paths (never chosen by auto), by the precisions they run here.
  py::dict emulated;
  for (Precision precision : {Precision::bf16, Precision::int8}) {
    py::list runs;
    try {
      cpu::resolve_path("amx_emulated", precision);
      runs.append("amx_emulated");
    } catch (const std::invalid_argument&) {
    }
    emulated[py::str(precision_name(precision))] = runs;
  }
  d["paths_emulated"] = emulated;
  return d;
}

// int8_outputs: one entry per layer, None (the convs reading it run in floating point) or (scale, zero_point)
// of its output's codes.
std::vector<QuantCodes> quant_from_list(const py::object& entries) {
  std::vector<QuantCodes> out;
  if (entries.is_none()) return out;
  for (const py::handle& e : entries) {
    QuantCodes q;
    q.scale = 0.f;  // None: not calibrated
    if (!e.is_none()) {
      const auto pair = e.cast<std::pair<float, int>>();
      if (!(pair.first > 0.f))
        throw std::invalid_argument("int8_outputs: expected a positive scale, got " + std::to_string(pair.first));
      q.scale = pair.first, q.zero_point = pair.second;
    }
    out.push_back(q);
  }
  return out;
}

int int8_code_max_for(int in_channels, const std::string& path) {
  const cpu::CpuKernels* kernels = cpu::kernels_for(cpu::resolve_path(path, Precision::int8));
  return cpu::int8_code_max(*kernels, round_up(in_channels, kChannelAlign));
}

std::unique_ptr<CpuEngine> make_engine(const py::list& layers, int scale, const std::string& image_skip,
                                       const std::string& precision, int threads, const std::string& path,
                                       const py::object& int8_outputs, int int8_code_max, int tail_band_rows,
                                       int image_channels, bool fuse_dense_blocks) {
  EngineOptions options;
  options.int8_code_max = int8_code_max;
  options.tail_band_rows = tail_band_rows;
  options.fuse_dense_blocks = fuse_dense_blocks;
  options.precision = parse_precision(precision);
  options.threads = threads;
  options.path = path;
  options.int8_outputs = quant_from_list(int8_outputs);
  return std::make_unique<CpuEngine>(network_from_records(layers, scale, image_skip, image_channels), options);
}

py::array run_engine(CpuEngine& engine, const py::array& tiles) {
  const DType dtype = image_dtype(tiles, "tiles");
  check_nhwc(tiles, engine.image_channels(), "tiles");
  const int n = int(tiles.shape(0)), h = int(tiles.shape(1)), w = int(tiles.shape(2)), s = engine.scale();
  py::array out(numpy_dtype(dtype), std::vector<py::ssize_t>{n, s * h, s * w, 3});
  const void* in_ptr = tiles.data();
  void* out_ptr = out.mutable_data();
  {
    py::gil_scoped_release release;
    engine.run(in_ptr, dtype, n, h, w, out_ptr);
  }
  return out;
}

// An [n, h, w, channels] copy of a map's interior (channel padding dropped).
template <class T>
py::array copy_map(const FeatureMapT<T>& f, int channels) {
  py::array_t<T> a(std::vector<py::ssize_t>{f.n, f.h, f.w, channels});
  T* dst = a.mutable_data();
  for (int b = 0; b < f.n; ++b)
    for (int y = 0; y < f.h; ++y)
      for (int x = 0; x < f.w; ++x, dst += channels) std::copy_n(f.at(b, y, x), channels, dst);
  return a;
}

// A StepPlan as plain Python: {"steps": [dict per step], "maps": [dict per map], "buffers": [dict per buffer],
// "output_shuffle": int}, for tests that hold both engines to one plan and check its lifetimes.
py::dict plan_dict(const StepPlan& plan) {
  static const char* kinds[] = {"head", "conv", "conv_int8", "quantize", "tail"};
  py::list steps, maps, buffers;
  for (const Step& s : plan.steps)
    steps.append(py::dict(py::arg("kind") = kinds[int(s.kind)], py::arg("layer") = s.layer,
                          py::arg("source") = s.source, py::arg("residual") = s.residual, py::arg("outer") = s.outer,
                          py::arg("output") = s.output));
  for (const MapInfo& m : plan.maps)
    maps.append(py::dict(py::arg("level") = m.level, py::arg("channels") = m.channels, py::arg("stored") = m.stored,
                         py::arg("storage") = storage_name(m.storage), py::arg("coded") = m.coded,
                         py::arg("band_rows") = m.band_rows, py::arg("buffer") = m.buffer,
                         py::arg("codes_buffer") = m.codes_buffer, py::arg("group") = m.group,
                         py::arg("offset") = m.offset, py::arg("group_channels") = m.group_channels));
  for (const BufferInfo& b : plan.buffers)
    buffers.append(py::dict(py::arg("level") = b.level, py::arg("channels") = b.channels,
                            py::arg("storage") = storage_name(b.storage), py::arg("band_rows") = b.band_rows));
  return py::dict(py::arg("steps") = steps, py::arg("maps") = maps, py::arg("buffers") = buffers,
                  py::arg("code_storage") = storage_name(plan.code_storage),
                  py::arg("output_shuffle") = plan.output_shuffle);
}

// run() that also calls observe(layer, values, codes) after each step with copies of the map it wrote
// (float32 / uint8 or uint16 arrays, or None): calibration reads the values, tests the codes.
py::array run_observed(CpuEngine& engine, const py::array& tiles, const py::list& channels,
                       const py::function& observe) {
  const DType dtype = image_dtype(tiles, "tiles");
  check_nhwc(tiles, engine.image_channels(), "tiles");
  const int n = int(tiles.shape(0)), h = int(tiles.shape(1)), w = int(tiles.shape(2)), s = engine.scale();
  if (int(channels.size()) != engine.num_layers())
    throw std::invalid_argument("channels: expected one count per layer (" + std::to_string(engine.num_layers()) +
                                "), got " + std::to_string(channels.size()));
  const std::vector<int> counts = channels.cast<std::vector<int>>();
  py::array out(numpy_dtype(dtype), std::vector<py::ssize_t>{n, s * h, s * w, 3});
  const void* in_ptr = tiles.data();
  void* out_ptr = out.mutable_data();
  py::gil_scoped_release release;
  engine.run(in_ptr, dtype, n, h, w, out_ptr, [&](int layer, const FeatureMap* values, const FeatureMapU8* codes,
                                                   const FeatureMapU16* codes_u16) {
    py::gil_scoped_acquire acquire;
    observe(layer, values ? copy_map(*values, counts[layer]) : py::object(py::none()),
            codes ? copy_map(*codes, counts[layer])
                  : codes_u16 ? copy_map(*codes_u16, counts[layer]) : py::object(py::none()));
  });
  return out;
}

// run(tiles) timing each step: (out, [(layer, seconds), ...]) in the order the steps ran (Engine.run's
// step_seconds says which layer each reports).
py::tuple run_profiled(CpuEngine& engine, const py::array& tiles) {
  const DType dtype = image_dtype(tiles, "tiles");
  check_nhwc(tiles, engine.image_channels(), "tiles");
  const int n = int(tiles.shape(0)), h = int(tiles.shape(1)), w = int(tiles.shape(2)), s = engine.scale();
  py::array out(numpy_dtype(dtype), std::vector<py::ssize_t>{n, s * h, s * w, 3});
  std::vector<std::pair<int, double>> seconds;
  {
    const void* in_ptr = tiles.data();
    void* out_ptr = out.mutable_data();
    py::gil_scoped_release release;
    engine.run(in_ptr, dtype, n, h, w, out_ptr, {}, &seconds);
  }
  return py::make_tuple(out, seconds);
}

}  // namespace
}  // namespace srgan_fast::bindings

PYBIND11_MODULE(_C, m) {
  using namespace srgan_fast;
  using namespace srgan_fast::bindings;
  m.doc() = "srgan_fast native engine: the SRResNet generator in C++ (CPU; CUDA when built with it)";
  m.def("build_info", &build_info, "How this module was built: compiler, CPU paths compiled, OpenMP, CUDA.");
  m.def("cpu_info", &cpu_info, "This CPU's features and the kernel paths runnable at each precision.");
  m.def(
      "amx_peak",
      [](const std::string& precision, int threads, double seconds) {
#ifdef SRGAN_FAST_HAVE_AMX
        const Precision p = parse_precision(precision);
        py::gil_scoped_release release;
        return cpu::amx_peak(p, threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency())), seconds);
#else
        (void)precision, (void)threads, (void)seconds;
        throw std::invalid_argument("this build has no amx kernels");
        return 0.0;
#endif
      },
      py::arg("precision"), py::arg("threads") = 0, py::arg("seconds") = 0.5,
      "The AMX tile unit's peak in ops/s (bf16 or int8) on `threads` threads (0: every core), for benchmarks.");
  m.def("int8_code_max", &int8_code_max_for, py::arg("in_channels"), py::arg("path") = "auto",
        "The widest activation codes [0, max] the int8 convs of this cpu path sum exactly with in_channels "
        "input channels: 255 (u8) for direct dot products, more for the avx2 integer Winograd.");

  m.def(
      "cuda_step_plan",
      [](const py::list& layers, int scale, const std::string& image_skip, const std::string& precision,
         bool fuse_residual_blocks) {
        const Precision p = parse_precision(precision);
        if (p != Precision::fp16 && p != Precision::bf16)
          throw std::invalid_argument("precision: the CUDA engine runs 'fp16' or 'bf16', got '" + precision + "'");
        return plan_dict(plan_cuda_steps(network_from_records(layers, scale, image_skip),
                                         p == Precision::fp16 ? Storage::f16 : Storage::bf16, fuse_residual_blocks));
      },
      py::arg("layers"), py::arg("scale"), py::arg("image_skip") = "none", py::arg("precision") = "fp16",
      py::arg("fuse_residual_blocks") = false,
      "The CUDA engine's plan for these layer records (steps, maps, buffers; see Engine.plan), made on any "
      "machine; raises ValueError naming the first layer the CUDA kernels cannot run.");

  py::class_<CpuEngine>(m, "Engine", "A network on CPU: run([N, h, w, 3] tiles) -> [N, s*h, s*w, 3].")
      .def(py::init(&make_engine), py::arg("layers"), py::arg("scale"), py::arg("image_skip") = "none",
           py::arg("precision") = "fp32", py::arg("threads") = 0, py::arg("path") = "auto",
           py::arg("int8_outputs") = py::none(), py::arg("int8_code_max") = 255,
           py::arg("tail_band_rows") = EngineOptions{}.tail_band_rows, py::arg("image_channels") = 3,
           py::arg("fuse_dense_blocks") = EngineOptions{}.fuse_dense_blocks,
           "layers: the description's layer records (srgan_fast.backends.base.engine_layers); scale: the "
           "network's; image_skip: 'none' | 'nearest' | 'bilinear'; precision: 'fp32' | 'bf16' | 'int8'; "
           "threads: 0 = every core; path: 'auto' | 'reference' | 'scalar' | 'avx2' | 'avx512'; int8_outputs "
           "(int8): per layer None (the convs reading it run in floating point) or (scale, zero_point) of its "
           "output's codes, which span [0, int8_code_max] (255: u8; more where int8_code_max() allows); "
           "tail_band_rows: the steps above the input's resolution run in bands of this many rows (0: whole maps, "
           "-1: the engine's choice); "
           "image_channels: 3, or 12 for a model reading RGB pixel-unshuffled by 2 (the caller unshuffles); "
           "fuse_dense_blocks: run each residual dense block as one op where the path has it (amx, bf16), "
           "else conv by conv (the same bits).")
      .def("run", &run_engine, py::arg("tiles"),
           "tiles: [N, h, w, image_channels] uint8 | uint16 | float32, C-contiguous -> [N, s*h, s*w, 3] of the same "
           "dtype")
      .def("run_observed", &run_observed, py::arg("tiles"), py::arg("channels"), py::arg("observe"),
           "run(tiles), calling observe(layer, values, codes) after each step with copies of the map it wrote "
           "(channels: each layer's output channel count)")
      .def("run_profiled", &run_profiled, py::arg("tiles"),
           "run(tiles) timing each step: (out, [(layer, seconds), ...]); -1 is the image store")
      .def("workspace_bytes", &CpuEngine::workspace_bytes, py::arg("n"), py::arg("h"), py::arg("w"))
      .def_property_readonly("precision", [](const CpuEngine& e) { return precision_name(e.precision()); })
      .def_property_readonly("path", &CpuEngine::path)
      .def_property_readonly("path_note", &CpuEngine::path_note,
                             "Why the engine runs another path than the one chosen (a failed AMX self-check), or ''")
      .def_property_readonly("float_precision", [](const CpuEngine& e) { return precision_name(e.float_precision()); })
      .def_property_readonly("int8_weight_max", &CpuEngine::int8_weight_max)
      .def_property_readonly("int8_code_max", &CpuEngine::int8_code_max)
      .def_property_readonly("int8_layers", &CpuEngine::int8_layers,
                             "Layers that run on codes: int8 convs, and the convs of dense blocks fused at int8.")
      .def_property_readonly("threads", &CpuEngine::threads)
      .def_property_readonly("scale", &CpuEngine::scale)
      .def_property_readonly("image_channels", &CpuEngine::image_channels)
      .def_property_readonly("num_layers", &CpuEngine::num_layers)
      .def_property_readonly("plan", [](const CpuEngine& e) { return plan_dict(e.plan()); },
                             "The steps this engine runs and the buffers its maps live in (engine/step_plan.h)")
      .def_property_readonly("seam_tiles", &CpuEngine::seam_tiles,
                             "Per layer, the output tile (rows = columns) its kernel computes as one.");

  py::module_ ops = m.def_submodule("ops", "Each fused op alone, for tests: NHWC float32 feature maps.");
  bind_ops(ops);
#ifdef SRGAN_FAST_WITH_CUDA
  srgan_fast::bind_cuda_engine(m);
#endif
}
