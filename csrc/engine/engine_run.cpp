// The CPU engine's run: each step on its kernels, the banded last upsampler and tail, the image store, and
// per-step timing for profiles.
#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "engine/engine.h"
#include "ops/cpu/image_output.h"

namespace srgan_fast {
namespace {

// The halo of a map of codes holds the code of 0 (the zero point), so that the int8 convs read their padding.
template <class Code>
void fill_halo(const FeatureMapT<Code>& f, int code) {
  if (f.data == nullptr) return;
  const int64_t row_elements = int64_t(f.w + 2 * kHalo) * f.c;
  for (int b = 0; b < f.n; ++b) {
    for (int y = -kHalo; y < f.h + kHalo; ++y) {
      Code* row = f.at(b, y, -kHalo);
      if (y < 0 || y >= f.h) {
        std::fill_n(row, row_elements, Code(code));
      } else {
        std::fill_n(row, size_t(kHalo) * f.c, Code(code));
        std::fill_n(f.at(b, y, f.w), size_t(kHalo) * f.c, Code(code));
      }
    }
  }
}

}  // namespace

void CpuEngine::run_step(const Step& step, const void* images, DType dtype, int n, int h, int w, void* out,
                         const ExecContext& ctx) {
  switch (step.kind) {
    case StepKind::head:
      heads_[step.op].run(kernels_, images, dtype, n, h, w, map_view(step.output, n, h, w), FeatureMap{}, ctx);
      break;
    case StepKind::conv: {
      const bool bf16_in = plan_.maps[step.source].storage == Storage::bf16;
      const FeatureMap in = bf16_in ? FeatureMap{} : map_view(step.source, n, h, w);
      const FeatureMapBf16 in_bf16 = bf16_in ? map_view_bf16(step.source, n, h, w) : FeatureMapBf16{};
      if (plan_.maps[step.output].storage == Storage::bf16) {
        convs_[step.op].run(kernels_, float_precision_, in, FeatureMap{}, FeatureMap{}, ctx,
                            map_view_bf16(step.output, n, h, w), FeatureMap{}, in_bf16);
      } else {
        const FeatureMap skip = step.residual >= 0 ? map_view(step.residual, n, h, w) : FeatureMap{};
        const FeatureMap outer = step.outer >= 0 ? map_view(step.outer, n, h, w) : FeatureMap{};
        convs_[step.op].run(kernels_, float_precision_, in, skip, map_view(step.output, n, h, w), ctx, {}, outer,
                            in_bf16);
      }
      break;
    }
    case StepKind::conv_int8: {
      const MapInfo& m = plan_.maps[step.output];
      Conv3x3Int8Params p;
      codes_views(step.source, n, h, w, p.in, p.in_u16);
      if (step.residual >= 0) p.skip = map_view(step.residual, n, h, w);
      if (m.stored && m.storage == Storage::bf16) p.out_bf16 = map_view_bf16(step.output, n, h, w);
      else if (m.stored) p.out = map_view(step.output, n, h, w);
      if (m.coded) {
        p.out_quant = quant_[step.output];
        codes_views(step.output, n, h, w, p.out_u8, p.out_u16);
        fill_halo(p.out_u8, p.out_quant.zero_point), fill_halo(p.out_u16, p.out_quant.zero_point);
      }
      int8_convs_[step.op].run(kernels_, p, ctx);
      break;
    }
    case StepKind::quantize: {
      QuantizeParams p;
      p.in = map_view(step.source, n, h, w);
      p.quant = quant_[step.source];
      codes_views(step.source, n, h, w, p.out_u8, p.out_u16);
      fill_halo(p.out_u8, p.quant.zero_point), fill_halo(p.out_u16, p.quant.zero_point);
      kernels_->quantize_codes(p, ctx);
      break;
    }
    case StepKind::tail:
      if (plan_.maps[step.source].storage == Storage::bf16)
        tails_[step.op].run(kernels_, Precision::bf16, FeatureMap{}, map_view_bf16(step.source, n, h, w), out,
                            dtype, ctx);
      else
        tails_[step.op].run(kernels_, Precision::fp32, map_view(step.source, n, h, w), FeatureMapBf16{}, out,
                            dtype, ctx);
      break;
  }
}

namespace {

// Rows [first, first + count) of one image of a map, as a one-image map whose halo rows are the map's
// neighbouring rows (or its halo, at the image's edges).
template <class T>
FeatureMapT<T> image_rows(const FeatureMapT<T>& f, int image, int first, int count) {
  FeatureMapT<T> rows = f;
  rows.data = f.at(image, first, 0), rows.n = 1, rows.h = count;
  return rows;
}

size_t dtype_bytes(DType t) { return t == DType::u8 ? 1 : t == DType::u16 ? 2 : 4; }

}  // namespace

void CpuEngine::run_chain(const void* images, DType dtype, int n, int h, int w, void* out, const ExecContext& ctx) {
  const std::vector<Step>& steps = plan_.steps;
  const Step& first_step = steps[chain_begin_];
  const bool bf16_input = plan_.maps[first_step.source].storage == Storage::bf16;
  const FeatureMap input = bf16_input ? FeatureMap{} : map_view(first_step.source, n, h, w);
  const FeatureMapBf16 input_bf16 = bf16_input ? map_view_bf16(first_step.source, n, h, w) : FeatureMapBf16{};
  const int in_rows = plan_.maps[first_step.source].level * h;
  const int out_h = plan_.maps.back().level * h, out_w = plan_.maps.back().level * w;
  const size_t out_row_bytes = size_t(out_w) * 3 * dtype_bytes(dtype);
  const size_t image_bytes = size_t(h) * w * 3 * dtype_bytes(dtype);
  for (int image = 0; image < n; ++image) {
    for (int first = 0; first < in_rows; first += band_rows_) {
      const std::vector<std::pair<int, int>> rows = chain_rows(first, std::min(in_rows, first + band_rows_), h);
      FeatureMap previous;           // the band of the previous step's map: rows from previous_first on,
      FeatureMapBf16 previous_bf16;  // in the one of the two its storage says
      Storage previous_storage = Storage::f32;
      int previous_first = 0;
      for (size_t j = 0; j < chain_.size(); ++j) {
        const Step& step = steps[chain_begin_ + j];
        const ChainStep& c = chain_[j];
        const int count = rows[j].second - rows[j].first;
        const int source_first = rows[j].first / c.shuffle / c.upsample;  // its input rows, from this one
        const int source_count = count / c.shuffle / c.upsample;
        if (step.kind == StepKind::tail) {
          void* image_out = static_cast<char*>(out) + (size_t(image) * out_h + rows[j].first) * out_row_bytes;
          if (previous_storage == Storage::bf16)
            tails_[step.op].run(kernels_, Precision::bf16, {}, image_rows(previous_bf16, 0, rows[j].first -
                                previous_first, count), image_out, dtype, ctx);
          else
            tails_[step.op].run(kernels_, Precision::fp32, image_rows(previous, 0, rows[j].first - previous_first,
                                count), {}, image_out, dtype, ctx);
          break;
        }
        FeatureMap in;
        FeatureMapBf16 in_bf16;
        if (j == 0 && input_bf16.data) in_bf16 = image_rows(input_bf16, image, source_first, source_count);
        else if (j == 0) in = image_rows(input, image, source_first, source_count);
        else if (previous_storage == Storage::bf16)
          in_bf16 = image_rows(previous_bf16, 0, source_first - previous_first, source_count);
        else in = image_rows(previous, 0, source_first - previous_first, source_count);
        const MapInfo& map = plan_.maps[step.output];
        const BufferInfo& info = plan_.buffers[map.buffer];
        if (count > info.band_rows) throw std::logic_error("run_chain: a band outgrew its buffer");
        float* storage = buffers_[map.buffer]->data();
        // Below the map the next conv reads zeros: clear what an earlier band left there. (Above it, the
        // buffer's own halo, which nothing writes.)
        const auto clear_below = [&](auto band) {
          if (rows[j].second == map.level * h)
            for (int y = count; y < count + kHalo; ++y)
              std::fill_n(band.at(0, y, -kHalo), size_t(map.level * w + 2 * kHalo) * band.c, 0);
        };
        if (map.storage == Storage::bf16) {
          previous_bf16 = make_feature_map(reinterpret_cast<uint16_t*>(storage), 1, count, map.level * w, map.channels);
          convs_[step.op].run(kernels_, float_precision_, in, {}, {}, ctx, previous_bf16, {}, in_bf16);
          clear_below(previous_bf16);
        } else {
          previous = make_feature_map(storage, 1, count, map.level * w, map.channels);
          convs_[step.op].run(kernels_, float_precision_, in, {}, previous, ctx, {}, {}, in_bf16);
          clear_below(previous);
        }
        previous_storage = map.storage, previous_first = rows[j].first;
      }
      if (plan_.output_shuffle > 0) {  // the last conv's band, through the image store
        ImageOutputParams p;
        p.in = previous, p.shuffle = plan_.output_shuffle, p.skip = image_skip_;
        p.image = static_cast<const char*>(images) + image * image_bytes;
        p.n = 1, p.h = h, p.w = w, p.scale = scale_, p.dtype = dtype;
        p.out = static_cast<char*>(out) + size_t(image) * out_h * out_row_bytes;
        p.first_row = rows.back().first, p.rows = rows.back().second - rows.back().first;
        cpu::image_output(p, ctx);
      }
    }
  }
}

DenseBlockParams CpuEngine::dense_block_params(const DenseBlock& block,
                                               PackedConv3x3Int8 (&int8_views)[kMaxDenseConvs]) const {
  DenseBlockParams p;
  p.channels = block.channels, p.growth = block.growth, p.count = block.steps;
  for (int k = 0; k < block.steps; ++k) p.weights[k] = &block.weights[k];
  for (size_t k = 0; k < block.int8_weights.size(); ++k)
    int8_views[k] = block.int8_weights[k].view(), p.weights_int8[k] = &int8_views[k];
  for (int k = 0; k < kMaxDenseConvs; ++k) p.codes[k] = block.codes[k];
  p.skip_scale = block.skip_scale, p.outer_scale = block.outer_scale;
  return p;
}

void CpuEngine::run_dense_block(const DenseBlock& block, int n, int h, int w, const ExecContext& ctx) {
  const Step& last = plan_.steps[block.first_step + block.steps - 1];
  PackedConv3x3Int8 int8_views[kMaxDenseConvs];
  DenseBlockParams p = dense_block_params(block, int8_views);
  p.in = map_view(plan_.steps[block.first_step].source, n, h, w);
  p.out = map_view(last.output, n, h, w);
  if (last.outer >= 0) p.outer_skip = map_view(last.outer, n, h, w);
  (block.int8 ? kernels_->dense_block_int8 : kernels_->dense_block_bf16)(p, ctx);
}

void CpuEngine::run(const void* images, DType dtype, int n, int h, int w, void* out, const LayerObserver& observer,
                    std::vector<std::pair<int, double>>* step_seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  prepare(n, h, w);
  ExecContext ctx;
  ctx.threads = threads_;
  ctx.scratch = scratch_.data();
  ctx.scratch_floats_per_thread = scratch_floats_per_thread(w);
  auto started = std::chrono::steady_clock::now();
  const auto timed = [&](int layer) {
    if (!step_seconds) return;
    const auto now = std::chrono::steady_clock::now();
    step_seconds->emplace_back(layer, std::chrono::duration<double>(now - started).count());
    started = now;
  };
  const std::vector<Step>& steps = plan_.steps;
  const int last_layer = int(plan_.maps.size()) - 1;
  auto dense_block = dense_blocks_.begin();
  for (size_t k = 0; k < steps.size(); ++k) {
    if (int(k) == chain_begin_) {  // the steps above the input's resolution, band by band, to the end
      run_chain(images, dtype, n, h, w, out, ctx);
      timed(last_layer);
      return;
    }
    if (dense_block != dense_blocks_.end() && dense_block->first_step == int(k)) {
      run_dense_block(*dense_block, n, h, w, ctx);
      k += dense_block->steps - 1;  // observed and timed as its last step, which writes the one map it stores
      ++dense_block;
    } else {
      run_step(steps[k], images, dtype, n, h, w, out, ctx);
    }
    const Step& step = steps[k];
    const int written = step.kind == StepKind::quantize ? step.source : step.output;
    timed(written < 0 ? last_layer : written);
    if (!observer || written < 0) continue;
    const MapInfo& m = plan_.maps[written];
    const bool values = m.stored && m.storage == Storage::f32 && step.kind != StepKind::quantize;
    const bool codes = m.coded && (step.kind == StepKind::quantize || step.kind == StepKind::conv_int8);
    const FeatureMap f = values ? map_view(written, n, h, w) : FeatureMap{};
    FeatureMapU8 q;
    FeatureMapU16 q16;
    if (codes) codes_views(written, n, h, w, q, q16);
    if (values || codes) observer(written, values ? &f : nullptr, q.data ? &q : nullptr, q16.data ? &q16 : nullptr);
  }
  if (plan_.output_shuffle > 0) {
    ImageOutputParams p;
    p.in = map_view(last_layer, n, h, w);
    p.shuffle = plan_.output_shuffle, p.image = images, p.skip = image_skip_;
    p.n = n, p.h = h, p.w = w, p.scale = scale_, p.out = out, p.dtype = dtype;
    cpu::image_output(p, ctx);
    timed(-1);
  }
}

}  // namespace srgan_fast
