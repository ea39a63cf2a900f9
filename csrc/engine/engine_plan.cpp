// The CPU engine's plan, made once per network: which storage each layer's map needs (float32, bf16 or u8
// codes), where quantize steps go, and which buffer each storage lives in.
#include <algorithm>
#include <stdexcept>

#include "engine/engine.h"

namespace srgan_fast {

// A conv reading several maps reads consecutive channel ranges of one buffer: each map is written where the
// concatenation reads it, so nothing is copied (ESRGAN's dense blocks append 32 channels per conv).
void CpuEngine::plan_concatenations(const NetworkSpec& network) {
  for (size_t i = 0; i < network.layers.size(); ++i) {
    const LayerSpec& l = network.layers[i];
    if (l.sources.size() < 2) continue;
    const auto refuse = [&](const std::string& why) {
      throw std::invalid_argument("the native engine cannot run layer " + std::to_string(i) + " '" + l.name +
                                  "': " + why);
    };
    if (std::find(l.sources.begin(), l.sources.end(), -1) != l.sources.end())
      refuse("a concatenation does not take the image");
    const int first = l.sources[0];
    const int group = maps_[first].group >= 0 ? maps_[first].group : first;
    int offset = maps_[first].group >= 0 ? maps_[first].offset : 0;
    for (int source : l.sources) {
      MapInfo& m = maps_[source];
      if (network.layers[source].result_channels() % kChannelAlign != 0)
        refuse("its inputs' channel counts must be multiples of " + std::to_string(kChannelAlign) + ", got " +
               std::to_string(network.layers[source].result_channels()) + " from '" + network.layers[source].name +
               "'");
      if (m.group < 0)
        m.group = group, m.offset = offset;
      else if (m.group != group || m.offset != offset)
        refuse("its inputs are not laid out as an earlier concatenation of them placed them");
      offset += m.channels;
    }
    maps_[group].group_channels = std::max(maps_[group].group_channels, offset);
  }
}

void CpuEngine::plan_storage(const NetworkSpec& network, const EngineOptions& options) {
  const int layers = int(maps_.size());
  std::vector<int> float_readers(layers, 0), code_readers(layers, 0);
  for (const Step& step : steps_) {
    if (step.source >= 0) ++(step.kind == StepKind::conv3x3_int8 ? code_readers : float_readers)[step.source];
    if (step.residual >= 0) ++float_readers[step.residual];
    if (step.outer >= 0) ++float_readers[step.outer];
  }
  if (output_shuffle_ > 0) ++float_readers[layers - 1];  // the image store
  for (int i = 0; i < layers; ++i) {
    MapInfo& m = maps_[i];
    const StepKind producer = steps_[i].kind;
    // Only an int8 conv can write codes alone; the head and float convs store their float result.
    m.stored = producer != StepKind::tail && (float_readers[i] > 0 || producer != StepKind::conv3x3_int8);
    m.coded = code_readers[i] > 0;
    if (m.coded) {
      m.quant = options.int8_outputs[i];
      m.quant.inv_scale = 1.f / m.quant.scale;
      m.quant.code_max = code_max_;
      if (m.quant.zero_point < 0 || m.quant.zero_point > code_max_)
        throw std::invalid_argument("int8: layer " + std::to_string(i) + " '" + network.layers[i].name +
                                    "': zero point must be in [0, " + std::to_string(code_max_) + "], got " +
                                    std::to_string(m.quant.zero_point));
    }
  }
  // At bf16 the tail reads bf16 products: the map it reads is stored as bf16 when it is the output of an
  // upsampler conv (whose epilogue can store bf16) and nothing else reads it.
  const Step& final_step = steps_.back();
  if (final_step.kind == StepKind::tail && float_precision_ == Precision::bf16 && kernels_ && kernels_->tail_bf16) {
    const int source = final_step.source;
    const StepKind producer = steps_[source].kind;
    if ((producer == StepKind::conv3x3 || producer == StepKind::conv3x3_int8) &&
        network.layers[source].shuffle == 2 && float_readers[source] == 1 && code_readers[source] == 0) {
      maps_[source].bf16 = true;
      maps_[source].channels = tails_[0].bf16_channels();
    }
  }
  // The tail's input, when a float upsampling conv writes it for the tail alone, lives one band at a time.
  if (final_step.kind == StepKind::tail && kernels_ && options.tail_band_rows > 0) {
    if (options.tail_band_rows % kBandAlign != 0)
      throw std::invalid_argument("tail_band_rows: expected a multiple of " + std::to_string(kBandAlign) +
                                  " (or 0), got " + std::to_string(options.tail_band_rows));
    const int source = final_step.source;
    if (steps_[source].kind == StepKind::conv3x3 && network.layers[source].shuffle == 2 &&
        float_readers[source] == 1 && code_readers[source] == 0) {
      maps_[source].banded = true;
      band_rows_ = options.tail_band_rows;
    }
  }
  std::vector<Step> steps;
  for (int i = 0; i < layers; ++i) {
    steps.push_back(steps_[i]);
    if (maps_[i].coded && steps_[i].kind != StepKind::conv3x3_int8) {
      Step quantize{StepKind::quantize};
      quantize.source = i;
      steps.push_back(quantize);
    }
  }
  steps_ = std::move(steps);
}

void CpuEngine::plan_buffers() {
  const int count = int(steps_.size()), layers = int(maps_.size());
  // Last step reading each map's float storage and its codes (count: the image store after the last step).
  std::vector<int> last_float(layers, -1), last_codes(layers, -1);
  for (int i = 0; i < count; ++i) {
    const Step& s = steps_[i];
    if (s.source >= 0) (s.kind == StepKind::conv3x3_int8 ? last_codes : last_float)[s.source] = i;
    if (s.residual >= 0) last_float[s.residual] = i;
    if (s.outer >= 0) last_float[s.outer] = i;
  }
  if (output_shuffle_ > 0) last_float[layers - 1] = count;
  // A concatenation's buffer lives until the last read of any of its members, and only its first member
  // (the group) releases it.
  for (int m = 0; m < layers; ++m)
    if (maps_[m].group >= 0) last_float[maps_[m].group] = std::max(last_float[maps_[m].group], last_float[m]);
  std::vector<bool> float_released(layers, false), codes_released(layers, false);
  std::vector<int> free_buffers;
  const auto allocate = [&](const BufferInfo& want) {
    const auto reusable = std::find_if(free_buffers.begin(), free_buffers.end(), [&](int b) {
      const BufferInfo& have = buffer_infos_[b];
      return have.level == want.level && have.channels == want.channels && have.storage == want.storage &&
             have.band_rows == want.band_rows;
    });
    if (reusable != free_buffers.end()) {
      const int b = *reusable;
      free_buffers.erase(reusable);
      return b;
    }
    buffer_infos_.push_back(want);
    buffers_.push_back(std::make_unique<AlignedBuffer>());
    return int(buffer_infos_.size()) - 1;
  };
  for (int i = 0; i < count; ++i) {
    for (int m = 0; m < layers; ++m) {
      const bool shares = maps_[m].group >= 0 && maps_[m].group != m;
      if (maps_[m].buffer >= 0 && !shares && !float_released[m] && last_float[m] < i) {
        free_buffers.push_back(maps_[m].buffer);
        float_released[m] = true;
      }
      if (maps_[m].codes_buffer >= 0 && !codes_released[m] && last_codes[m] < i) {
        free_buffers.push_back(maps_[m].codes_buffer);
        codes_released[m] = true;
      }
    }
    const Step& s = steps_[i];
    if (s.kind == StepKind::quantize) {
      MapInfo& map = maps_[s.source];
      map.codes_buffer = allocate({map.level, map.channels, code_storage()});
      continue;
    }
    if (s.output < 0) continue;
    MapInfo& map = maps_[s.output];
    if (map.coded && s.kind == StepKind::conv3x3_int8)
      map.codes_buffer = allocate({map.level, map.channels, code_storage()});
    if (!map.stored) continue;
    const BufferInfo want{map.level, map.channels, map.bf16 ? Storage::bf16 : Storage::f32,
                          map.banded ? 2 * (band_rows_ + kBandAbove + kBandBelow) : 0};
    if (map.group >= 0) {  // a concatenation's member: the group's buffer, made by whichever is written first
      MapInfo& group = maps_[map.group];
      if (group.buffer < 0) group.buffer = allocate({map.level, group.group_channels, Storage::f32});
      map.buffer = group.buffer;
      continue;
    }
    const int residual = s.residual;
    if (residual >= 0 && maps_[residual].group < 0 && last_float[residual] == i && !float_released[residual]) {
      const BufferInfo& skip = buffer_infos_[maps_[residual].buffer];
      if (skip.level == want.level && skip.channels == want.channels && skip.storage == want.storage) {
        map.buffer = maps_[residual].buffer;  // the skip add in place: nothing reads the skip afterwards
        float_released[residual] = true;
        continue;
      }
    }
    map.buffer = allocate(want);
  }
}

std::vector<int> CpuEngine::seam_tiles() const {
  std::vector<int> tiles(maps_.size(), 1);
  if (!kernels_) return tiles;  // the reference path convolves directly
  const bool bf16 = float_precision_ == Precision::bf16;
  for (const Step& step : steps_) {
    const int layer = step.kind == StepKind::tail ? int(maps_.size()) - 1 : step.output;
    if (step.kind == StepKind::conv3x3) tiles[layer] = bf16 ? kernels_->conv3x3_bf16_tile : 4;  // fp32: F(4x4)
    // The fp32 tail: nine 3x3 sub-kernels by F(3x3); the bf16 one (reading a bf16 map) is direct.
    if (step.kind == StepKind::tail) tiles[layer] = maps_[step.source].bf16 ? 1 : 3;
  }
  return tiles;
}

}  // namespace srgan_fast
