#include "engine/engine.h"

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "ops/cpu/cpu_features.h"

namespace srgan_fast {
namespace {

int default_threads() {
#ifdef _OPENMP
  return std::max(1, omp_get_num_procs());
#else
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

// The path asked for, or where it is amx and the tiles disagree with their model on this machine (checked
// once per process), avx512 with `note` saying why: a user never gets pixels from a path that failed here.
cpu::Path checked_path(const std::string& name, Precision precision, std::string& note) {
  const cpu::Path path = cpu::resolve_path(name, precision);
#ifdef SRGAN_FAST_HAVE_AMX
  if (path == cpu::Path::amx) {
    const std::string failure = cpu::amx_self_check(precision);
    if (!failure.empty()) {
      note = failure + "; running the avx512 path instead";
      return cpu::Path::avx512;
    }
  }
#endif
  return path;
}

// Whether a conv with several inputs reads layer `index`'s output: it opens or is inside a dense block.
bool feeds_dense_input(const NetworkSpec& network, int index) {
  for (const LayerSpec& l : network.layers)
    if (l.sources.size() > 1 && std::find(l.sources.begin(), l.sources.end(), index) != l.sources.end()) return true;
  return false;
}

int checked_threads(int threads) {
  if (threads < 0) throw std::invalid_argument("threads must be >= 0 (0: every core), got " + std::to_string(threads));
#ifndef _OPENMP
  threads = 1;  // without OpenMP the kernels run on the calling thread
#endif
  return threads == 0 ? default_threads() : threads;
}

// The slopes of the activation applied before a pixel shuffle by `shuffle` that equal those applied after it
// (an elementwise activation commutes with the shuffle); no activation is a slope of 1.
std::vector<float> slopes_before_shuffle(const LayerSpec& l, int shuffle) {
  const int group = shuffle * shuffle;
  std::vector<float> slopes(size_t(l.result_channels()) * group, 1.f);
  if (!l.slopes.empty())
    for (size_t c = 0; c < slopes.size(); ++c) slopes[c] = l.slopes[c / group];
  return slopes;
}

}  // namespace

CpuEngine::CpuEngine(const NetworkSpec& network, const EngineOptions& options)
    : precision_((validate_network(network), options.precision)),
      path_(checked_path(options.path, options.precision, path_note_)),
      kernels_(cpu::kernels_for(path_)),
      float_precision_(precision_ != Precision::int8 ? precision_
                       : kernels_ && kernels_->conv3x3_bf16 && cpu_features().avx512_bf16 ? Precision::bf16
                                                                                  : Precision::fp32),
      threads_(checked_threads(options.threads)),
      scale_(network.scale),
      image_channels_(network.image_channels),
      image_skip_(network.image_skip) {
  if (network.image_skip != ImageSkip::none && network.image_channels != 3)
    throw std::invalid_argument("the native engine adds an image skip to a 3-channel input only, got " +
                                std::to_string(network.image_channels) + " channels");
  // Reserve so that ops are never moved while being added (they own their packed weights).
  const size_t count = network.layers.size();
  heads_.reserve(count), convs_.reserve(count), int8_convs_.reserve(count), tails_.reserve(1);
  if (precision_ == Precision::int8 && options.int8_outputs.size() != count)
    throw std::invalid_argument("precision 'int8' needs int8_outputs: one (scale, zero_point) or None per layer (" +
                                std::to_string(count) + "), got " + std::to_string(options.int8_outputs.size()));
  for (int i = 0; i < int(count); ++i) add_layer(network, i, options);
  if (precision_ == Precision::int8) {
    int widest = 0;
    for (const Conv3x3Int8Op& op : int8_convs_) widest = std::max(widest, op.in_channels());
    const int limit = cpu::int8_code_max(*kernels_, widest);
    if (options.int8_code_max < 255 || options.int8_code_max > limit)
      throw std::invalid_argument("int8_code_max: the " + cpu::path_name(path_) + " int8 convs of this network sum "
                                  "codes in [0, 255] to [0, " + std::to_string(limit) + "] exactly, got " +
                                  std::to_string(options.int8_code_max));
    code_max_ = options.int8_code_max;
    plan_.code_storage = code_max_ > 255 ? Storage::u16 : Storage::u8;
  }
  plan_storage(network, options);
  plan_dense_blocks(network, options);
  plan_.place_and_assign(network, "native", /*residual_in_place=*/true);
}

void CpuEngine::add_layer(const NetworkSpec& network, int index, const EngineOptions& options) {
  const LayerSpec& l = network.layers[index];
  const bool last = index + 1 == int(network.layers.size());
  const auto refuse = [&](const std::string& why) {
    throw std::invalid_argument("the native engine cannot run layer " + std::to_string(index) + " '" + l.name +
                                "': " + why);
  };
  ConvTensors t;
  t.cout = l.out_channels, t.cin = l.in_channels, t.k = l.kernel, t.weight = l.weight, t.bias = l.bias;
  const bool bf16 = float_precision_ == Precision::bf16;
  const bool fused_extras = l.sources.size() > 1 || l.upsample > 1 || l.residual_scale != 1.f || l.outer_residual >= 0;
  if (l.upsample > 1 && (l.source < 0 || l.kernel != 3))
    refuse("only 3x3 convs inside the network read their input upsampled");
  Step step;
  step.layer = index, step.source = l.source, step.residual = l.residual, step.outer = l.outer_residual;
  step.output = index;
  MapInfo map;
  map.level = l.result_level();
  if (l.source < 0) {
    if (l.in_channels != network.image_channels || l.kernel > 9 || l.shuffle != 1 || l.residual >= 0 || last)
      refuse("a layer reading the image must be a conv from its " + std::to_string(network.image_channels) +
             " channels, kernel <= 9, without pixel shuffle or residual, followed by other layers");
    t.alpha = slopes_before_shuffle(l, 1);
    heads_.emplace_back(std::move(t));
    step.kind = StepKind::head, step.op = int(heads_.size()) - 1;
    map.channels = heads_.back().out_channels();
  } else if (last && l.kernel == 9) {
    if (l.out_channels != 3 || l.shuffle != 1 || !l.slopes.empty() || l.residual >= 0 ||
        network.image_skip != ImageSkip::none)
      refuse("a 9x9 last conv must go straight to RGB (no shuffle, activation, residual or image skip)");
    tails_.emplace_back(std::move(t), bf16);
    step.kind = StepKind::tail, step.op = 0, step.output = -1;
  } else if (last && bf16 && kernels_ && kernels_->tail_3x3 && l.kernel == 3 && l.out_channels == 3 &&
             l.shuffle == 1 && l.slopes.empty() && l.residual < 0 && !fused_extras &&
             l.in_channels % kChannelAlign == 0 && network.image_skip == ImageSkip::none) {
    // A 3x3 conv straight to RGB (RRDBNet's conv_last) as a tail on tiles: three multiplies a row of 16 pixels
    // where a conv with 3 of 16 output columns used would take nine, and the image stored from its sums.
    tails_.emplace_back(std::move(t), true);
    step.kind = StepKind::tail, step.op = 0, step.output = -1;
  } else if (l.kernel == 3) {
    // The last layer's pixel shuffle (any factor) happens in the image store; a ×2 shuffle inside the
    // network in the conv's own epilogue.
    const int shuffle_in_store = last ? l.shuffle : 1;
    Epilogue epilogue = Epilogue::bias_prelu;
    if (l.shuffle == 2 && !last) {
      if (l.residual >= 0) refuse("a residual add after a pixel shuffle is not fused");
      epilogue = Epilogue::bias_shuffle_prelu;
      t.alpha = slopes_before_shuffle(l, 1);
    } else if (l.shuffle != shuffle_in_store) {
      refuse("inside the network the 3x3 convs pixel-shuffle by 2 only");
    } else if (l.residual >= 0) {
      if (!l.slopes.empty()) refuse("an activation and a residual add on one conv are not fused");
      if (last) refuse("the last conv adds no residual (an image skip adds the input)");
      if (l.shuffle != 1) refuse("a residual add after a pixel shuffle is not fused");
      epilogue = Epilogue::bias_add_skip;
    } else {
      t.alpha = slopes_before_shuffle(l, l.shuffle);
    }
    // int8: the 3x3 convs whose input has codes (the calibration table's choice), never the last (which
    // makes the image: its error would reach the pixels unfiltered); the others run at float_precision_. A
    // conv with dense inputs, upsampled ones or scaled residuals runs int8 only inside a fused dense block
    // (plan_dense_blocks), and so does the first conv of a block where the path fuses them.
    const bool opens_dense_block = options.fuse_dense_blocks && kernels_ && kernels_->dense_block_int8 &&
                                   feeds_dense_input(network, index);
    int out_channels;
    if (precision_ == Precision::int8 && !last && !fused_extras && !opens_dense_block &&
        options.int8_outputs[l.source].scale > 0.f) {
      int8_convs_.emplace_back(t, epilogue, options.int8_outputs[l.source], kernels_->int8_weight_max,
                               kernels_->int8_winograd);
      step.kind = StepKind::conv_int8, step.op = int(int8_convs_.size()) - 1;
      out_channels = int8_convs_.back().out_channels();
    } else {
      convs_.emplace_back(std::move(t), epilogue, bf16,
                          ConvFusion{l.upsample, l.residual_scale, l.outer_residual_scale});
      step.kind = StepKind::conv, step.op = int(convs_.size()) - 1;
      out_channels = convs_.back().out_channels();
    }
    map.channels = epilogue == Epilogue::bias_shuffle_prelu ? out_channels / 4 : out_channels;
    if (last) map.level = l.level, plan_.output_shuffle = l.shuffle;
  } else {
    refuse("the CPU ops run 3x3 convs anywhere and 9x9 convs only from the image or to RGB at the end, got a " +
           std::to_string(l.kernel) + "x" + std::to_string(l.kernel) + " conv");
  }
  plan_.steps.push_back(step);
  plan_.maps.push_back(map);
}

int CpuEngine::int8_layers() const {
  int layers = 0;
  for (const Step& step : plan_.steps) layers += step.kind == StepKind::conv_int8;
  for (const DenseBlock& b : dense_blocks_) layers += b.int8 ? b.steps : 0;
  return layers;
}

size_t CpuEngine::buffer_floats(const BufferInfo& b, int n, int h, int w) const {
  const size_t values = b.band_rows > 0 ? feature_map_floats(1, b.band_rows, b.level * w, b.channels)
                                        : feature_map_floats(n, b.level * h, b.level * w, b.channels);
  return (values * storage_bytes(b.storage) + sizeof(float) - 1) / sizeof(float);
}

size_t CpuEngine::scratch_floats_per_thread(int w) const {
  size_t floats = 0;
  for (const Conv3x3Op& op : convs_) floats = std::max(floats, cpu::conv3x3_scratch_floats(op.in_channels(),
                                                                                           op.out_channels()));
  for (const Conv3x3Int8Op& op : int8_convs_)  // the Winograd int8 kernel's; more than the direct one needs
    floats = std::max(floats, cpu::conv3x3_scratch_floats(op.in_channels(), op.out_channels()));
  if (!heads_.empty()) floats = std::max(floats, cpu::head_scratch_floats(w, heads_[0].in_channels()));
  for (const TailOp& op : tails_) floats = std::max(floats, cpu::tail_scratch_floats(op.in_channels()));
  for (const DenseBlock& b : dense_blocks_) {
    const int width = b.channels + (b.steps - 1) * b.growth;
    floats = std::max(floats, b.int8 ? cpu::dense_block_int8_scratch_floats(w, b.steps, width)
                                     : cpu::dense_block_scratch_floats(w, b.steps, width));
  }
  return (floats + 15) / 16 * 16;  // whole cache lines, so that threads never share one
}

size_t CpuEngine::workspace_bytes(int n, int h, int w) const {
  size_t floats = size_t(threads_) * scratch_floats_per_thread(w);
  for (const BufferInfo& b : plan_.buffers) floats += buffer_floats(b, n, h, w);
  return floats * sizeof(float);
}

void CpuEngine::prepare(int n, int h, int w) {
  // Same tile size and no more images than before: the layout and its zero halos are still valid.
  if (h == h_ && w == w_ && n <= capacity_n_) return;
  while (buffers_.size() < plan_.buffers.size()) buffers_.push_back(std::make_unique<AlignedBuffer>());
  for (size_t b = 0; b < buffers_.size(); ++b) buffers_[b]->reset_zero(buffer_floats(plan_.buffers[b], n, h, w));
  scratch_.reset_zero(size_t(threads_) * scratch_floats_per_thread(w));
  capacity_n_ = n, h_ = h, w_ = w;
}

FeatureMap CpuEngine::map_view(int map, int n, int h, int w) const {
  const MapInfo& m = plan_.maps[map];
  FeatureMap f = make_feature_map(buffers_[m.buffer]->data(), n, m.level * h, m.level * w, plan_.stride(map));
  f.data += m.offset;
  return f;
}

FeatureMapBf16 CpuEngine::map_view_bf16(int map, int n, int h, int w) const {
  const MapInfo& m = plan_.maps[map];
  return make_feature_map(reinterpret_cast<uint16_t*>(buffers_[m.buffer]->data()), n, m.level * h, m.level * w,
                          m.channels);
}

void CpuEngine::codes_views(int map, int n, int h, int w, FeatureMapU8& u8, FeatureMapU16& u16) const {
  const MapInfo& m = plan_.maps[map];
  float* data = buffers_[m.codes_buffer]->data();
  if (plan_.code_storage == Storage::u16)
    u16 = make_feature_map(reinterpret_cast<uint16_t*>(data), n, m.level * h, m.level * w, m.channels);
  else
    u8 = make_feature_map(reinterpret_cast<uint8_t*>(data), n, m.level * h, m.level * w, m.channels);
}

}  // namespace srgan_fast
