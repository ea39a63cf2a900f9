// The CPU engine's choices in the plan, made once per network: which storage each layer's map needs (float32,
// bf16 or codes), where quantize steps go, and which map lives one band at a time. Buffers: step_plan.cpp.
#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "engine/engine.h"

namespace srgan_fast {

void CpuEngine::plan_storage(const NetworkSpec& network, const EngineOptions& options) {
  std::vector<Step>& steps = plan_.steps;
  std::vector<MapInfo>& maps = plan_.maps;
  const int layers = int(maps.size());
  std::vector<int> float_readers(layers, 0), code_readers(layers, 0);
  for (const Step& step : steps) {
    const std::vector<int>& sources = network.layers[step.layer].sources;  // a concatenation's parts, or empty
    if (step.kind == StepKind::conv_int8) ++code_readers[step.source];
    else if (sources.size() > 1)
      for (int source : sources) ++float_readers[source];
    else if (step.source >= 0) ++float_readers[step.source];
    if (step.residual >= 0) ++float_readers[step.residual];
    if (step.outer >= 0) ++float_readers[step.outer];
  }
  if (plan_.output_shuffle > 0) ++float_readers[layers - 1];  // the image store
  quant_.assign(layers, QuantCodes{});
  for (int i = 0; i < layers; ++i) {
    MapInfo& m = maps[i];
    const StepKind producer = steps[i].kind;
    // Only an int8 conv can write codes alone; the head and float convs store their float result.
    m.stored = producer != StepKind::tail && (float_readers[i] > 0 || producer != StepKind::conv_int8);
    m.coded = code_readers[i] > 0;
    if (m.coded) {
      QuantCodes& quant = quant_[i];
      quant = options.int8_outputs[i];
      quant.inv_scale = 1.f / quant.scale;
      quant.code_max = code_max_;
      if (quant.zero_point < 0 || quant.zero_point > code_max_)
        throw std::invalid_argument("int8: layer " + std::to_string(i) + " '" + network.layers[i].name +
                                    "': zero point must be in [0, " + std::to_string(code_max_) + "], got " +
                                    std::to_string(quant.zero_point));
    }
  }
  // At bf16 the tail reads bf16 products: the map it reads is stored as bf16 when nothing else reads it and its
  // producer's epilogue can store bf16: an upsampler conv's, or a bias + activation bf16 conv's on a path whose
  // convs write bf16 maps (RRDBNet's conv_hr before its 3x3 tail), with no channels past the tail's to clear.
  const Step& final_step = steps.back();
  if (final_step.kind == StepKind::tail && float_precision_ == Precision::bf16 && kernels_ && kernels_->tail_bf16) {
    const int source = final_step.source;
    const Step& producer = steps[source];
    const LayerSpec& l = network.layers[source];
    const bool upsampler = (producer.kind == StepKind::conv || producer.kind == StepKind::conv_int8) && l.shuffle == 2;
    const bool bf16_map_conv = producer.kind == StepKind::conv && kernels_->conv3x3_bf16_maps && l.shuffle == 1 &&
                               l.upsample == 1 && l.residual < 0 && !l.slopes.empty() && l.sources.size() <= 1 &&
                               l.out_channels == tails_[0].bf16_channels() &&
                               convs_[producer.op].runs_bf16_maps(kernels_);
    if ((upsampler || bf16_map_conv) && float_readers[source] == 1 && code_readers[source] == 0) {
      maps[source].storage = Storage::bf16;
      maps[source].channels = tails_[0].bf16_channels();
    }
  }
  // Where the path's bf16 convs read and write bf16 maps, a map between two such convs (bias and activation
  // out, read only as their input) is stored as bf16: half the bytes, and its reader rounds nothing (the first
  // conv of a residual block, RRDBNet's upsampling and HR convs). The same bits: the producer rounds what the
  // reader would have.
  if (float_precision_ == Precision::bf16 && kernels_ && kernels_->conv3x3_bf16_maps) {
    const auto bf16_conv = [&](const Step& s) {
      const LayerSpec& l = network.layers[s.layer];
      return s.kind == StepKind::conv && l.sources.size() <= 1 && convs_[s.op].runs_bf16_maps(kernels_);
    };
    std::vector<int> bf16_readers(layers, 0);
    for (const Step& s : steps)
      if (s.source >= 0 && bf16_conv(s)) ++bf16_readers[s.source];
    for (int i = 0; i + 1 < layers; ++i) {
      const LayerSpec& l = network.layers[i];
      const bool plain_output = l.shuffle == 1 && l.residual < 0 && !l.slopes.empty();  // bias_prelu
      if (bf16_conv(steps[i]) && plain_output && maps[i].storage == Storage::f32 && code_readers[i] == 0 &&
          float_readers[i] > 0 && bf16_readers[i] == float_readers[i])
        maps[i].storage = Storage::bf16;
    }
  }
  std::vector<Step> with_quantize;
  for (int i = 0; i < layers; ++i) {
    with_quantize.push_back(steps[i]);
    if (maps[i].coded && steps[i].kind != StepKind::conv_int8) {
      Step quantize;
      quantize.kind = StepKind::quantize, quantize.layer = i, quantize.source = i;
      with_quantize.push_back(quantize);
    }
  }
  steps = std::move(with_quantize);
  int band_rows = options.tail_band_rows;
  // The engine's choice: 48 rows, where each band's rows at a conv's edges recomputed (Winograd tiles, halo
  // rows) and its per-band start (a parallel region and its rings per conv) cost little. On AMX tiles (2-core
  // Xeon, 128², chain medians of 9 interleaved calls) 48 ran rrdbnet's chain in 22.5 ms against 26.6 at 12 rows,
  // srresnet's in 18.2 against 20.3, msrresnet's in 37.9 against 37.5; at 540x960 rrdbnet took the same time.
  if (band_rows == -1) band_rows = 48;
  if (band_rows < 0 || band_rows % kBandAlign != 0)
    throw std::invalid_argument("tail_band_rows: expected a multiple of " + std::to_string(kBandAlign) +
                                ", 0 (whole maps) or -1 (the engine's choice), got " +
                                std::to_string(options.tail_band_rows));
  if (kernels_ && band_rows > 0) {
    band_rows_ = band_rows;
    plan_chain(float_readers, code_readers, network);
  }
}

// The chain: the longest run of steps at the end above the input's resolution, each a float conv (or the tail)
// reading only the map of the step before it, which nothing else reads: from the first upsampling conv on for
// SRResNet and MSRResNet, from RRDBNet's first nearest-upsampling conv. (At the input's resolution bands would
// recompute a margin per conv and save little: those maps are the smallest.)
void CpuEngine::plan_chain(const std::vector<int>& float_readers, const std::vector<int>& code_readers,
                           const NetworkSpec& network) {
  const std::vector<Step>& steps = plan_.steps;
  std::vector<MapInfo>& maps = plan_.maps;
  if (plan_.output_shuffle > 1) return;  // a sub-pixel last conv (SRVGGNetCompact) runs at the input's resolution
  int begin = -1;
  for (int k = int(steps.size()) - 1; k >= 0; --k) {
    const Step& s = steps[k];
    const LayerSpec& l = network.layers[s.layer];
    const bool last = k + 1 == int(steps.size());
    const bool runs = s.kind == StepKind::conv || (last && s.kind == StepKind::tail);
    const bool feeds_next = last || (steps[k + 1].source == s.output && float_readers[s.output] == 1 &&
                                     code_readers[s.output] == 0);
    if (!runs || !feeds_next || s.source < 0 || s.residual >= 0 || s.outer >= 0 || l.sources.size() > 1 ||
        l.result_level() <= 1)
      break;
    begin = k;
  }
  if (begin < 0 || steps[begin].kind == StepKind::tail) return;  // the tail alone reads a whole map anyway
  chain_begin_ = begin;
  const std::vector<int> tiles = seam_tiles();
  for (int k = begin; k < int(steps.size()); ++k) {
    const LayerSpec& l = network.layers[steps[k].layer];
    ChainStep c;
    c.conv_level = maps[steps[k].source].level * l.upsample;
    c.shuffle = steps[k].kind == StepKind::tail ? 1 : l.shuffle;
    c.upsample = l.upsample, c.radius = l.kernel / 2;
    c.tile = tiles[steps[k].layer];
    chain_.push_back(c);
  }
  // Each chain map's band buffer: the rows an inner band computes (the first is clipped at the top, the last
  // at the bottom), on a height no band reaches the end of.
  const int inner = 1000 * band_rows_, tall = 1 << 24;
  const std::vector<std::pair<int, int>> rows = chain_rows(inner, inner + band_rows_, tall);
  for (int k = begin; k < int(steps.size()); ++k)
    if (steps[k].output >= 0) maps[steps[k].output].band_rows = rows[k - begin].second - rows[k - begin].first;
}

// A residual dense block: conv 0 reads a map x alone, conv k the concatenation [x, conv 0, ..., conv k-1], each
// but the last with an activation and read by nothing after the block; the last adds x (and maybe an outer
// residual). Where the path runs them as one op, the block's steps run as one, and the maps of all but its
// last conv get no storage (before the buffers are assigned): at int8 on codes (dense_block_int8) where the
// calibration gave codes to x and to each inner conv's output, else at bf16 (dense_block_bf16) where the
// float layers run bf16.
void CpuEngine::plan_dense_blocks(const NetworkSpec& network, const EngineOptions& options) {
  const bool int8 = precision_ == Precision::int8 && kernels_ && kernels_->dense_block_int8;
  const bool bf16 = float_precision_ == Precision::bf16 && kernels_ && kernels_->dense_block_bf16;
  if (!options.fuse_dense_blocks || (!int8 && !bf16)) return;
  const std::vector<Step>& steps = plan_.steps;
  const auto layer = [&](size_t k) -> const LayerSpec& { return network.layers[steps[k].layer]; };
  const auto plain = [&](const LayerSpec& l) { return l.kernel == 3 && l.upsample == 1 && l.shuffle == 1; };
  const auto sources = [&](size_t k) {  // what step k's conv reads, in order
    const LayerSpec& l = layer(k);
    return l.sources.empty() ? std::vector<int>{l.source} : l.sources;
  };
  // Readers of each map outside a candidate block are checked against this: the last step reading it.
  std::vector<size_t> last_reader(plan_.maps.size(), 0);
  for (size_t k = 0; k < steps.size(); ++k) {
    for (int source : sources(k))
      if (source >= 0) last_reader[source] = k;
    if (steps[k].residual >= 0) last_reader[steps[k].residual] = k;
    if (steps[k].outer >= 0) last_reader[steps[k].outer] = k;
  }
  for (size_t first = 0; first < steps.size(); ++first) {
    const int x = steps[first].source;
    if (steps[first].kind != StepKind::conv || x < 0 || layer(first).sources.size() > 1) continue;
    std::vector<int> expected = {x};  // the sources of the next conv of the block
    size_t k = first;
    for (; k < steps.size() && int(k - first) < kMaxDenseConvs; ++k) {
      const LayerSpec& l = layer(k);
      if (steps[k].kind != StepKind::conv || sources(k) != expected || !plain(l)) break;
      if (l.residual == x) break;  // the last conv
      if (l.residual >= 0 || l.outer_residual >= 0 || l.slopes.empty() || l.out_channels != layer(first).out_channels)
        break;
      expected.push_back(steps[k].layer);
    }
    if (k == steps.size() || int(k - first) >= kMaxDenseConvs || k == first) continue;
    const LayerSpec& l = layer(k);
    if (steps[k].kind != StepKind::conv || sources(k) != expected || !plain(l) || l.residual != x || !l.slopes.empty())
      continue;
    bool private_maps = true;  // the inner convs' maps are read inside the block only
    for (size_t j = first; j < k; ++j) private_maps = private_maps && last_reader[steps[j].output] <= k;
    if (!private_maps) continue;
    DenseBlock block;
    block.first_step = int(first), block.steps = int(k - first) + 1;
    block.channels = layer(first).in_channels, block.growth = layer(first).out_channels;
    block.skip_scale = l.residual_scale, block.outer_scale = l.outer_residual_scale;
    for (size_t j = first; j <= k; ++j) block.weights[j - first] = convs_[steps[j].op].packed();
    PackedConv3x3Int8 views[kMaxDenseConvs];
    block.int8 = int8 && pack_dense_block_int8(network, options, block);
    if (!block.int8 && !(bf16 && kernels_->dense_block_fits(dense_block_params(block, views)))) continue;
    dense_blocks_.push_back(std::move(block));
    for (size_t j = first; j <= k; ++j) plan_.steps[j].fused = true;
    for (size_t j = first; j < k; ++j) plan_.maps[steps[j].output].stored = false;  // never written
    first = k;
  }
}

bool CpuEngine::pack_dense_block_int8(const NetworkSpec& network, const EngineOptions& options,
                                      DenseBlock& block) const {
  const auto step = [&](int k) -> const Step& { return plan_.steps[block.first_step + k]; };
  // The codes of each part: the block input's, then each inner conv's output's (a table gives them or not).
  const auto codes_of = [&](int map, QuantCodes& codes) {
    codes = options.int8_outputs[map];
    if (!(codes.scale > 0.f)) return false;
    if (codes.zero_point < 0 || codes.zero_point > 255)
      throw std::invalid_argument("int8: layer " + std::to_string(map) + " '" + network.layers[map].name +
                                  "': zero point must be in [0, 255], got " + std::to_string(codes.zero_point));
    codes.inv_scale = 1.f / codes.scale, codes.code_max = 255;
    return true;
  };
  if (code_max_ != 255 || !codes_of(step(0).source, block.codes[0])) return false;
  for (int k = 0; k + 1 < block.steps; ++k)
    if (!codes_of(step(k).layer, block.codes[k + 1])) return false;
  std::vector<QuantCodes> inputs(block.channels, block.codes[0]);  // of each input channel of the concatenation
  for (int k = 0; k < block.steps; ++k) {
    const LayerSpec& l = network.layers[step(k).layer];
    const float factor = k + 1 < block.steps ? block.codes[k + 1].inv_scale : block.skip_scale;
    block.int8_weights.push_back(pack_dense_conv_int8(l.weight.data(), l.bias.data(),
                                                      l.slopes.empty() ? nullptr : l.slopes.data(), l.out_channels,
                                                      l.in_channels, inputs, kernels_->int8_weight_max, factor));
    if (k + 1 < block.steps) inputs.insert(inputs.end(), block.growth, block.codes[k + 1]);  // read by the next
  }
  PackedConv3x3Int8 views[kMaxDenseConvs];
  return kernels_->dense_block_int8_fits(dense_block_params(block, views));
}

std::vector<std::pair<int, int>> CpuEngine::chain_rows(int first, int last, int h) const {
  const int count = int(chain_.size());
  std::vector<std::pair<int, int>> rows(count);
  const int input_level = plan_.maps[plan_.steps[chain_begin_].source].level;
  const int ratio = plan_.maps.back().level / input_level;
  const auto floor_to = [](int v, int m) { return floor_div(v, m) * m; };
  int lo = first * ratio, hi = last * ratio;  // wanted rows of the current step's output
  for (int j = count - 1; j >= 0; --j) {
    const ChainStep& c = chain_[j];
    const int grid = std::lcm(c.tile, c.upsample), conv_rows = c.conv_level * h;
    const int conv_lo = std::max(0, floor_to(floor_div(lo, c.shuffle), grid));
    const int conv_hi = std::min(conv_rows, floor_to(floor_div(hi + c.shuffle - 1, c.shuffle) + grid - 1, grid));
    rows[j] = {conv_lo * c.shuffle, conv_hi * c.shuffle};
    // The rows of its input this reads: the conv's, widened by its radius, in the input's rows.
    const int source_rows = conv_rows / c.upsample;
    lo = std::max(0, floor_div(conv_lo - c.radius, c.upsample));
    hi = std::min(source_rows, floor_div(conv_hi - 1 + c.radius, c.upsample) + 1);
  }
  return rows;
}

std::vector<int> CpuEngine::seam_tiles() const {
  std::vector<int> tiles(plan_.maps.size(), 1);
  if (!kernels_) return tiles;  // the reference path convolves directly
  const bool bf16 = float_precision_ == Precision::bf16;
  for (const Step& step : plan_.steps) {
    if (step.kind == StepKind::conv) tiles[step.layer] = bf16 ? kernels_->conv3x3_bf16_tile : 4;  // fp32: F(4x4)
    // The fp32 tail: nine 3x3 sub-kernels by F(3x3); the bf16 ones as their tables say.
    if (step.kind == StepKind::tail)
      tiles[step.layer] = plan_.maps[step.source].storage == Storage::bf16 ? kernels_->tail_bf16_input_tile
                          : bf16                                           ? kernels_->tail_tile_at_bf16
                                                                           : 3;
  }
  return tiles;
}

}  // namespace srgan_fast
