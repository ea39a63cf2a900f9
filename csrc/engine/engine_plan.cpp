// The CPU engine's choices in the plan, made once per network: which storage each layer's map needs (float32,
// bf16 or codes), where quantize steps go, and which map lives one band at a time. Buffers: step_plan.cpp.
#include <stdexcept>

#include "engine/engine.h"

namespace srgan_fast {

void CpuEngine::plan_storage(const NetworkSpec& network, const EngineOptions& options) {
  std::vector<Step>& steps = plan_.steps;
  std::vector<MapInfo>& maps = plan_.maps;
  const int layers = int(maps.size());
  std::vector<int> float_readers(layers, 0), code_readers(layers, 0);
  for (const Step& step : steps) {
    if (step.source >= 0) ++(step.kind == StepKind::conv_int8 ? code_readers : float_readers)[step.source];
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
  // At bf16 the tail reads bf16 products: the map it reads is stored as bf16 when it is the output of an
  // upsampler conv (whose epilogue can store bf16) and nothing else reads it.
  const Step& final_step = steps.back();
  if (final_step.kind == StepKind::tail && float_precision_ == Precision::bf16 && kernels_ && kernels_->tail_bf16) {
    const int source = final_step.source;
    const StepKind producer = steps[source].kind;
    if ((producer == StepKind::conv || producer == StepKind::conv_int8) &&
        network.layers[source].shuffle == 2 && float_readers[source] == 1 && code_readers[source] == 0) {
      maps[source].storage = Storage::bf16;
      maps[source].channels = tails_[0].bf16_channels();
    }
  }
  // The tail's input, when a float upsampling conv writes it for the tail alone, lives one band at a time.
  if (final_step.kind == StepKind::tail && kernels_ && options.tail_band_rows > 0) {
    if (options.tail_band_rows % kBandAlign != 0)
      throw std::invalid_argument("tail_band_rows: expected a multiple of " + std::to_string(kBandAlign) +
                                  " (or 0), got " + std::to_string(options.tail_band_rows));
    const int source = final_step.source;
    if (steps[source].kind == StepKind::conv && network.layers[source].shuffle == 2 &&
        float_readers[source] == 1 && code_readers[source] == 0) {
      band_rows_ = options.tail_band_rows;
      maps[source].band_rows = 2 * (band_rows_ + kBandAbove + kBandBelow);
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
}

std::vector<int> CpuEngine::seam_tiles() const {
  std::vector<int> tiles(plan_.maps.size(), 1);
  if (!kernels_) return tiles;  // the reference path convolves directly
  const bool bf16 = float_precision_ == Precision::bf16;
  for (const Step& step : plan_.steps) {
    if (step.kind == StepKind::conv) tiles[step.layer] = bf16 ? kernels_->conv3x3_bf16_tile : 4;  // fp32: F(4x4)
    // The fp32 tail: nine 3x3 sub-kernels by F(3x3); the bf16 one (reading a bf16 map) is direct.
    if (step.kind == StepKind::tail)
      tiles[step.layer] = plan_.maps[step.source].storage == Storage::bf16 ? 1 : 3;
  }
  return tiles;
}

}  // namespace srgan_fast
