// The int8 kernels' shared epilogue: an exact s32 sum over taps and input channels of
// w_code * (code - zero point) becomes the float result (scale, bias, then PReLU, skip add or pixel shuffle)
// and is stored to every destination of the params: float32, bf16, the next conv's u8 or u16 codes.
#pragma once

#include <cstdint>

#include "ops/cpu/isa_template.h"
#include "ops/cpu/kernels.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

// W values quantized by q into codes at `dst`: u8 (saturating at 255), or u16 (clamped to q.code_max), which
// only instruction sets with S::kHasU16Codes store.
template <class S, class Code>
inline void store_codes_of(Code* dst, typename S::vf v, const QuantCodes& q) {
  if constexpr (sizeof(Code) == 1) {
    S::store_codes(dst, v, S::set1(q.inv_scale), S::set1_i(q.zero_point));
  } else {
    static_assert(S::kHasU16Codes, "u16 codes on an instruction set without them");
    S::store_codes(dst, v, S::set1(q.inv_scale), S::set1_i(q.zero_point), S::set1_i(q.code_max));
  }
}

// Channels ch .. ch+W-1 of result pixel (y, x) into every destination of p.
template <class S>
inline void store_int8_result(const Conv3x3Int8Params& p, int image, int y, int x, int ch, typename S::vf v) {
  if (p.out.data) S::store(p.out.at(image, y, x) + ch, v);
  if constexpr (S::kHasBf16) {
    if (p.out_bf16.data) S::store_bf16(p.out_bf16.at(image, y, x) + ch, v);
  }
  if (p.out_u8.data) store_codes_of<S>(p.out_u8.at(image, y, x) + ch, v, p.out_quant);
  if constexpr (S::kHasU16Codes) {
    if (p.out_u16.data) store_codes_of<S>(p.out_u16.at(image, y, x) + ch, v, p.out_quant);
  }
}

// Output channels co .. co+W-1 of pixel (y, x) from their centred sums.
template <class S>
inline void store_int8_sum(const Conv3x3Int8Params& p, int image, int y, int x, int co, typename S::vi sum) {
  const PackedConv3x3Int8& wt = *p.weights;
  const typename S::vf v = S::add(S::mul(S::int_to_float(sum), S::load(wt.scale + co)), S::load(wt.bias + co));
  switch (p.epilogue) {
    case Epilogue::bias_prelu:
      store_int8_result<S>(p, image, y, x, co, S::prelu(v, S::load(wt.alpha + co)));
      break;
    case Epilogue::bias_add_skip:
      store_int8_result<S>(p, image, y, x, co, S::add(v, S::load(p.skip.at(image, y, x) + co)));
      break;
    case Epilogue::bias_shuffle_prelu: {
      const int group = wt.cout / 4, sub = co / group, ch = co % group;  // sub-pixel major channels
      store_int8_result<S>(p, image, 2 * y + sub / 2, 2 * x + sub % 2, ch, S::prelu(v, S::load(wt.alpha + ch)));
      break;
    }
  }
}

template <class S, class Code>
void quantize_into(const QuantizeParams& p, const FeatureMapT<Code>& out, const ExecContext& ctx) {
  const int64_t rows = int64_t(p.in.n) * p.in.h;
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic)
  for (int64_t r = 0; r < rows; ++r) {
    const int image = int(r / p.in.h), y = int(r % p.in.h);
    const QuantCodes quant = p.quant;  // a local: the code stores cannot alias it, so its broadcasts are hoisted
    for (int x = 0; x < p.in.w; ++x)  // out's channels: `in` may be a channel range of a wider buffer
      for (int c = 0; c < out.c; c += S::W)
        store_codes_of<S>(out.at(image, y, x) + c, S::load(p.in.at(image, y, x) + c), quant);
  }
}

// A float32 map quantized into codes (u8, or u16 where p.out_u16 is set), where a layer that is not an int8
// conv feeds one.
template <class S>
void quantize_codes(const QuantizeParams& p, const ExecContext& ctx) {
  if constexpr (S::kHasU16Codes) {
    if (p.out_u16.data) return quantize_into<S>(p, p.out_u16, ctx);
  }
  quantize_into<S>(p, p.out_u8, ctx);
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
