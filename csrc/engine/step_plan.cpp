#include "engine/step_plan.h"

#include <algorithm>
#include <stdexcept>

#include "ops/feature_map.h"

namespace srgan_fast {
namespace {

constexpr int kCudaChannelMultiple = 16;  // conv_mma reads activations 16 channels at a time

[[noreturn]] void refuse_layer(const std::string& engine, int index, const LayerSpec& l, const std::string& why) {
  throw std::invalid_argument("the " + engine + " engine cannot run layer " + std::to_string(index) + " '" +
                              l.name + "': " + why);
}

}  // namespace

std::string storage_name(Storage storage) {
  switch (storage) {
    case Storage::f32: return "f32";
    case Storage::bf16: return "bf16";
    case Storage::f16: return "f16";
    case Storage::u8: return "u8";
    case Storage::u16: return "u16";
  }
  return "?";
}

size_t storage_bytes(Storage storage) {
  return storage == Storage::f32 ? 4 : storage == Storage::u8 ? 1 : 2;
}

std::vector<float> centred_in_9x9(const std::vector<float>& weight, int cout, int cin, int k) {
  if (k == 9) return weight;
  std::vector<float> padded(size_t(cout) * cin * 81, 0.f);
  const int offset = (9 - k) / 2;
  for (int o = 0; o < cout; ++o)
    for (int i = 0; i < cin; ++i)
      for (int y = 0; y < k; ++y)
        for (int x = 0; x < k; ++x)
          padded[((size_t(o) * cin + i) * 9 + y + offset) * 9 + x + offset] =
              weight[((size_t(o) * cin + i) * k + y) * k + x];
  return padded;
}

void StepPlan::place_and_assign(const NetworkSpec& network, const std::string& engine, bool residual_in_place) {
  place_concatenations(network, engine);
  assign_buffers(residual_in_place);
}

// A conv reading several maps reads consecutive channel ranges of one buffer: each map is written where the
// concatenation reads it, so nothing is copied (ESRGAN's dense blocks append 32 channels per conv).
void StepPlan::place_concatenations(const NetworkSpec& network, const std::string& engine) {
  std::vector<bool> fused(network.layers.size(), false);
  for (const Step& s : steps)
    if (s.fused && s.layer >= 0) fused[s.layer] = true;
  for (size_t i = 0; i < network.layers.size(); ++i) {
    const LayerSpec& l = network.layers[i];
    if (l.sources.size() < 2 || fused[i]) continue;
    if (std::find(l.sources.begin(), l.sources.end(), -1) != l.sources.end())
      refuse_layer(engine, int(i), l, "a concatenation does not take the image");
    const int first = l.sources[0];
    const int group = maps[first].group >= 0 ? maps[first].group : first;
    int offset = maps[first].group >= 0 ? maps[first].offset : 0;
    for (int source : l.sources) {
      MapInfo& m = maps[source];
      if (m.channels != network.layers[source].result_channels())
        refuse_layer(engine, int(i), l, "its inputs' channel counts must be multiples of " +
                     std::to_string(kChannelAlign) + ", got " + std::to_string(network.layers[source].result_channels()) +
                     " from '" + network.layers[source].name + "'");
      if (m.group < 0)
        m.group = group, m.offset = offset;
      else if (m.group != group || m.offset != offset)
        refuse_layer(engine, int(i), l, "its inputs are not laid out as an earlier concatenation of them placed them");
      offset += m.channels;
    }
    maps[group].group_channels = std::max(maps[group].group_channels, offset);
  }
}

void StepPlan::assign_buffers(bool residual_in_place) {
  const int count = int(steps.size()), layers = int(maps.size());
  // Last step reading each map's storage and its codes (count: the image store after the last step).
  std::vector<int> last_read(layers, -1), last_codes(layers, -1);
  for (int i = 0; i < count; ++i) {
    const Step& s = steps[i];
    if (s.source >= 0) (s.kind == StepKind::conv_int8 ? last_codes : last_read)[s.source] = i;
    if (s.residual >= 0) last_read[s.residual] = i;
    if (s.outer >= 0) last_read[s.outer] = i;
  }
  if (output_shuffle > 0) last_read[layers - 1] = count;
  // A concatenation's buffer lives until the last read of any of its members, and only its first member
  // (the group) releases it.
  for (int m = 0; m < layers; ++m)
    if (maps[m].group >= 0) last_read[maps[m].group] = std::max(last_read[maps[m].group], last_read[m]);
  std::vector<bool> released(layers, false), codes_released(layers, false);
  std::vector<int> free_buffers;
  const auto allocate = [&](const BufferInfo& want) {
    const auto reusable = std::find_if(free_buffers.begin(), free_buffers.end(), [&](int b) {
      const BufferInfo& have = buffers[b];
      return have.level == want.level && have.channels == want.channels && have.storage == want.storage &&
             have.band_rows == want.band_rows;
    });
    if (reusable != free_buffers.end()) {
      const int b = *reusable;
      free_buffers.erase(reusable);
      return b;
    }
    buffers.push_back(want);
    return int(buffers.size()) - 1;
  };
  for (int i = 0; i < count; ++i) {
    for (int m = 0; m < layers; ++m) {
      const bool shares = maps[m].group >= 0 && maps[m].group != m;
      if (maps[m].buffer >= 0 && !shares && !released[m] && last_read[m] < i) {
        free_buffers.push_back(maps[m].buffer);
        released[m] = true;
      }
      if (maps[m].codes_buffer >= 0 && !codes_released[m] && last_codes[m] < i) {
        free_buffers.push_back(maps[m].codes_buffer);
        codes_released[m] = true;
      }
    }
    const Step& s = steps[i];
    if (s.kind == StepKind::quantize) {
      MapInfo& map = maps[s.source];
      map.codes_buffer = allocate({map.level, map.channels, code_storage});
      continue;
    }
    if (s.output < 0) continue;
    MapInfo& map = maps[s.output];
    if (map.coded && s.kind == StepKind::conv_int8)
      map.codes_buffer = allocate({map.level, map.channels, code_storage});
    if (!map.stored) continue;
    const BufferInfo want{map.level, map.channels, map.storage, map.band_rows};
    if (map.group >= 0) {  // a concatenation's member: the group's buffer, made by whichever is written first
      MapInfo& group = maps[map.group];
      if (group.buffer < 0) group.buffer = allocate({map.level, group.group_channels, map.storage});
      map.buffer = group.buffer;
      continue;
    }
    const int residual = s.residual;
    if (residual_in_place && !s.fused && residual >= 0 && maps[residual].group < 0 && last_read[residual] == i &&
        !released[residual]) {
      const BufferInfo& skip = buffers[maps[residual].buffer];
      if (skip.level == want.level && skip.channels == want.channels && skip.storage == want.storage &&
          skip.band_rows == want.band_rows) {
        map.buffer = maps[residual].buffer;  // the skip add in place: nothing reads the skip afterwards
        released[residual] = true;
        continue;
      }
    }
    map.buffer = allocate(want);
  }
}

StepPlan plan_cuda_steps(const NetworkSpec& network, Storage storage, bool fuse_residual_blocks) {
  validate_network(network);
  const std::string engine = "CUDA";
  if (storage != Storage::f16 && storage != Storage::bf16)
    throw std::invalid_argument("plan_cuda_steps: activations are stored as f16 or bf16, got " + storage_name(storage));
  if (network.image_channels != 3)
    refuse_layer(engine, 0, network.layers[0], "it reads a " + std::to_string(network.image_channels) +
                 "-channel (pixel-unshuffled) image; the CUDA kernels read RGB");
  StepPlan plan;
  const int count = int(network.layers.size());
  for (int i = 0; i < count; ++i) {
    const LayerSpec& l = network.layers[i];
    const bool last = i + 1 == count;
    const auto refuse = [&](const std::string& why) { refuse_layer(engine, i, l, why); };
    if (l.sources.size() > 1) refuse("it reads a concatenation (a dense connection)");
    if (l.upsample > 1) refuse("it reads its input upsampled");
    if (l.residual_scale != 1.f || l.outer_residual >= 0) refuse("it scales its residual or adds a second one");
    Step step;
    step.layer = i, step.source = l.source, step.residual = l.residual, step.output = i;
    MapInfo map;
    map.level = l.result_level(), map.channels = l.result_channels(), map.storage = storage;
    if (l.source >= 0 && l.in_channels % kCudaChannelMultiple != 0)
      refuse("its input has " + std::to_string(l.in_channels) + " channels; the CUDA kernels read multiples of " +
             std::to_string(kCudaChannelMultiple));
    if (l.source < 0) {
      if (l.kernel > 9 || l.shuffle != 1 || l.residual >= 0 || last)
        refuse("a layer reading the image must be a conv with kernel <= 9, without pixel shuffle or residual, "
               "followed by other layers");
      step.kind = StepKind::head;
    } else if (last) {
      if (l.kernel != 3 && l.kernel != 9) refuse("the last conv must be 3x3 or 9x9");
      if (!l.slopes.empty() || l.residual >= 0) refuse("the last conv takes no activation or residual");
      if (l.shuffle == 1 && network.image_skip == ImageSkip::none) {
        step.kind = StepKind::tail, step.output = -1;
        map.stored = false;
      } else {  // a float32 map [n, H, W, 3 s^2] that the image store shuffles by s and adds the image to
        step.kind = StepKind::conv;
        map.level = l.level, map.channels = l.out_channels, map.storage = Storage::f32;
        plan.output_shuffle = l.shuffle;
      }
    } else {
      if (l.kernel != 3) refuse("inside the network the CUDA kernels run 3x3 convs, got " + std::to_string(l.kernel) +
                                "x" + std::to_string(l.kernel));
      if (l.shuffle != 1 && (l.shuffle != 2 || l.residual >= 0))
        refuse("inside the network the CUDA kernels pixel-shuffle by 2 only, without a residual after it, got x" +
               std::to_string(l.shuffle));
      step.kind = StepKind::conv;
    }
    if (map.stored && map.storage != Storage::f32 && map.channels % kCudaChannelMultiple != 0)
      refuse("its output has " + std::to_string(map.channels) + " channels; the CUDA kernels store multiples of " +
             std::to_string(kCudaChannelMultiple));
    plan.steps.push_back(step);
    plan.maps.push_back(map);
  }
  plan.place_and_assign(network, engine, /*residual_in_place=*/!fuse_residual_blocks);
  return plan;
}

}  // namespace srgan_fast
