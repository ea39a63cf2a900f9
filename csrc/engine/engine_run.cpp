// The CPU engine's run: each step on its kernels, the banded last upsampler and tail, the image store, and
// per-step timing for profiles.
#include <algorithm>
#include <chrono>
#include <type_traits>

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
      const FeatureMap in = map_view(step.source, n, h, w);
      if (plan_.maps[step.output].storage == Storage::bf16) {
        convs_[step.op].run(kernels_, float_precision_, in, FeatureMap{}, FeatureMap{}, ctx,
                            map_view_bf16(step.output, n, h, w));
      } else {
        const FeatureMap skip = step.residual >= 0 ? map_view(step.residual, n, h, w) : FeatureMap{};
        const FeatureMap outer = step.outer >= 0 ? map_view(step.outer, n, h, w) : FeatureMap{};
        convs_[step.op].run(kernels_, float_precision_, in, skip, map_view(step.output, n, h, w), ctx, {}, outer);
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

void CpuEngine::run_banded(const Step& upsampler, const Step& tail, DType dtype, int n, int h, int w, void* out,
                           const ExecContext& ctx) {
  const MapInfo& map = plan_.maps[upsampler.output];
  const int in_rows = plan_.maps[upsampler.source].level * h, out_rows = map.level * h, out_w = map.level * w;
  const BufferInfo& info = plan_.buffers[map.buffer];
  float* storage = buffers_[map.buffer]->data();
  const FeatureMap input = map_view(upsampler.source, n, h, w);
  const size_t out_row_bytes = size_t(out_w) * 3 * dtype_bytes(dtype);
  for (int image = 0; image < n; ++image) {
    for (int first = 0; first < in_rows; first += band_rows_) {
      const int last = std::min(in_rows, first + band_rows_);
      const int top = std::max(0, first - kBandAbove), bottom = std::min(in_rows, last + kBandBelow);
      const FeatureMap in = image_rows(input, image, top, bottom - top);
      const int computed = 2 * (bottom - top);  // output rows 2*top .. 2*bottom-1 at band rows 0 .. computed-1
      void* image_out = static_cast<char*>(out) + (size_t(image) * out_rows + 2 * first) * out_row_bytes;
      // FeatureMap, or FeatureMapBf16 where the tail reads bf16 (plan_storage).
      const auto run_band = [&](auto band) {
        constexpr bool bf16 = std::is_same_v<decltype(band), FeatureMapBf16>;
        band.h = computed;
        if constexpr (bf16) convs_[upsampler.op].run(kernels_, float_precision_, in, {}, {}, ctx, band);
        else convs_[upsampler.op].run(kernels_, float_precision_, in, {}, band, ctx);
        // Below the image the tail reads zeros: clear what an earlier band left there. (Above it, the band's
        // own halo, which nothing writes.)
        if (bottom == in_rows)
          for (int y = computed; y < computed + kHalo; ++y)
            std::fill_n(band.at(0, y, -kHalo), size_t(out_w + 2 * kHalo) * band.c, 0);
        const auto rows = image_rows(band, 0, 2 * (first - top), 2 * (last - first));
        if constexpr (bf16) tails_[tail.op].run(kernels_, Precision::bf16, {}, rows, image_out, dtype, ctx);
        else tails_[tail.op].run(kernels_, Precision::fp32, rows, {}, image_out, dtype, ctx);
      };
      if (map.storage == Storage::bf16)
        run_band(make_feature_map(reinterpret_cast<uint16_t*>(storage), 1, info.band_rows, out_w, map.channels));
      else
        run_band(make_feature_map(storage, 1, info.band_rows, out_w, map.channels));
    }
  }
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
  for (size_t k = 0; k < steps.size(); ++k) {
    const Step& step = steps[k];
    if (step.output >= 0 && plan_.maps[step.output].band_rows > 0) {  // the last upsampler, then the tail: the end
      run_banded(step, steps[k + 1], dtype, n, h, w, out, ctx);
      timed(last_layer);
      break;
    }
    run_step(step, images, dtype, n, h, w, out, ctx);
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
