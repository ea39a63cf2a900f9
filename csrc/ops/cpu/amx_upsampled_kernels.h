// A bf16 3x3 conv on its input nearest-upsampled by 2 (ESRGAN's upsampling convs), on AMX tiles, without
// upsampling anything. Output pixel (2i + a, 2j + b) reads input rows i - 1 + a + ey and columns j - 1 + b + ex
// for ey, ex in {0, 1}: the upsampled pixels the 3x3 kernel covers repeat input pixels, so for each of the four
// output parities (a, b) the conv is a 2x2 conv on the input itself, whose taps sum the 3x3 weights that fall on
// the same input pixel (PackedConv3x3::w_up2_bf16): 4 taps instead of 9, on rows of the input's width.
// Blocks are 32 output pixels of one row and one column parity (16 consecutive input pixels an A tile) x 32
// output channels, the 2 x 2 tiles of amx_bf16_kernels.h; their epilogue writes every other output pixel
// (AmxBf16Block::x_step = 2). The input rows are read in place where the input is a bf16 map, else from a ring
// of rows rounded from float32 once per thread.
#pragma once

#include "ops/cpu/amx_bf16_kernels.h"

namespace srgan_fast::cpu::SRGAN_FAST_ISA {

inline bool amx_upsampled_fits(const Conv3x3Params& p) {
  return p.upsample == 2 && p.weights->w_up2_bf16 != nullptr && amx_bf16_fits(*p.weights);
}

// Multiplies `block` (output pixels block.x0 + 2r, those of column parity b) from the input rows rows[ey] (pixel
// x at rows[ey] + (x + 1) * pixel_values), whose first output pixel reads input column j0 - 1 + b + ex; runs the
// epilogue of the block before in four parts, one after each tap.
template <class Tiles, int MT, int NT, class Epilogue>
void amx_upsampled_block(const PackedConv3x3& wt, Tiles& tiles, const uint16_t* const rows[2], int64_t pixel_values,
                         int j0, int a, int b, const AmxBf16Block& block, int kc, AmxBf16Epilogues& epilogues,
                         const Epilogue& epilogue) {
  const int64_t b_block = int64_t(16) * wt.cin * 16;  // bf16 values of 16 output channels' weights
  amx_zero_accumulators<Tiles, MT, NT>(tiles);
  for (int tap = 0; tap < 4; ++tap) {
    const int ey = tap / 2, ex = tap % 2;
    const uint16_t* in = rows[ey] + int64_t(j0 + b + ex) * pixel_values;
    const uint16_t* w = wt.w_up2_bf16 + (block.co0 / 16) * b_block + int64_t((a * 2 + b) * 4 + tap) * wt.cin * 16;
    for (int k0 = 0; k0 < wt.cin; k0 += kc, in += kc, w += kc * 16)
      amx_bf16_step<Tiles, MT, NT>(tiles, in, pixel_values, w, b_block);
    epilogues.part(epilogue, tap, 4);
  }
  amx_store_accumulators<Tiles, MT, NT>(tiles, epilogues.next(block));
}

template <class S, class Tiles>
void conv3x3_bf16_upsampled_tiles(const Conv3x3Params& p, const ExecContext& ctx) {
  const PackedConv3x3& wt = *p.weights;
  const int w_in = p.in.w;
  const bool in_place = p.in_bf16.data != nullptr;
  const int64_t pixel_values = in_place ? p.in_bf16.c : wt.cin;
  const int kc = wt.cin % 32 == 0 ? 32 : 16;
  const auto epilogue = amx_bf16_conv_epilogue<S>(p);
  Conv3x3Params at_input = p;  // the input rows at their own size, for the ring
  at_input.upsample = 1;
  amx_bf16_conv_rows<Tiles>(p.in.n, 2 * p.in.h, in_place ? 0 : int64_t(w_in + 2) * wt.cin, epilogue, ctx,
                            [&](AmxBf16ConvThread<Tiles>& t, int image, int y) {
    const int a = y % 2;
    const uint16_t* rows[2];
    for (int ey = 0; ey < 2; ++ey)
      rows[ey] = amx_bf16_input_row(at_input, in_place, t.converted, image, y / 2 - 1 + a + ey, w_in, wt.cin);
    // Both column parities of a block one after the other: they read mostly the same input pixels, and write
    // the two halves of the same output lines.
    amx_blocks_of_row(t.tiles, t.configured, 2 * kc, wt.cout, image, y, w_in,
                      [&](const AmxBf16Block& block, auto mt, auto nt) {
                        for (int b = 0; b < 2; ++b) {
                          AmxBf16Block out = block;  // in output pixels: every other one from 2 j0 + b
                          out.x0 = 2 * block.x0 + b, out.x_step = 2;
                          amx_upsampled_block<Tiles, decltype(mt)::value, decltype(nt)::value>(
                              wt, t.tiles, rows, pixel_values, block.x0, a, b, out, kc, t.epilogues, epilogue);
                        }
                      });
  });
}

}  // namespace srgan_fast::cpu::SRGAN_FAST_ISA
