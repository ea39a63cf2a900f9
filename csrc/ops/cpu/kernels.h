// The CPU kernel table: one instance per instruction set (kernels_<isa>.cpp), chosen at run time.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>

#include "ops/params.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace srgan_fast::cpu {

// Winograd tiles transformed and multiplied together: enough rows to amortise streaming the weights of a
// position, few enough that a block's transformed inputs and products stay in L2. A multiple of every
// micro-kernel's row count (6, 4, 3).
constexpr int kTileBlock = 24;
// Output channels per pass over a tile block: the upsampler's 4C outputs go in C-wide chunks.
// Helpers used both here and inside the per-instruction-set kernels have internal linkage (static): each
// translation unit keeps its own copy, compiled with its own flags.
static inline int cout_chunk(int cout) { return cout % 64 == 0 ? 64 : cout; }

// Elements from one Winograd position's [kTileBlock][channels] panel of a block's V or M to the next. The
// transforms touch all 36 (or 16) panels at once; panels a multiple of 4 KiB apart (128 fp32 channels) would all
// fall in one L1 set, so each is followed by a cache line of padding.
static inline int64_t winograd_panel(int channels, int element_bytes) {
  return int64_t(kTileBlock) * channels + 64 / element_bytes;
}

// Floats of scratch one thread needs for each op (the engine allocates the maximum once). A Winograd conv's:
// V and M of a block of tiles, then the column transforms a tile shares with the next (at most 2 x 6 x cin).
static inline size_t conv3x3_scratch_floats(int cin, int cout) {
  return size_t(36) * (winograd_panel(cin, 4) + winograd_panel(cout_chunk(cout), 4)) + size_t(12) * cin + 64;
}
static inline size_t head_scratch_floats(int w, int cin) { return size_t(9) * (w + 8) * cin + 64; }
// Winograd tail: tiles per block along a row (their transformed patches, 3 rows x (block + 2), stay in L2),
// and tile rows per work item (a band transforms each patch row once, plus 2 rows at its top).
constexpr int kTailTileBlock = 16, kTailRowBand = 16;
static inline size_t tail_scratch_floats(int c) {
  return size_t(3) * (kTailTileBlock + 2) * 25 * c + size_t(kTailTileBlock) * 25 * 3 + 64;
}

// A fused dense block (dense_block_bf16) works in column strips of at most this many pixels, each with a ring
// of count + 3 bf16 rows of its concatenation (`width` channels) in the thread's scratch (dense_block_wavefront.h):
// the strip's columns and `count` more on each side. At 256 a 192-channel ring row is about 100 KiB, and the ring
// with the convs' weights (480 KiB) stays in L2 on frames wider than 128 pixels too.
constexpr int kDenseStripPixels = 256;
static inline int dense_block_strips(int w) { return (w + kDenseStripPixels - 1) / kDenseStripPixels; }
static inline int64_t dense_block_ring_pixels(int w, int count) {
  return (w + dense_block_strips(w) - 1) / dense_block_strips(w) + 2 * count;
}
static inline int dense_block_ring_rows(int count) { return count + 3; }
static inline size_t dense_block_scratch_floats(int w, int count, int width) {
  return (size_t(dense_block_ring_rows(count)) * dense_block_ring_pixels(w, count) * width + 1) / 2;  // bf16
}
// The int8 block's ring (dense_block_int8): u8 codes, each pixel padded to a multiple of 64.
static inline size_t dense_block_int8_scratch_floats(int w, int count, int width) {
  return (size_t(dense_block_ring_rows(count)) * dense_block_ring_pixels(w, count) * ((width + 63) / 64 * 64) + 3) /
         4;
}

// The kernels' parallel loops use schedule(dynamic): on a machine shared with other jobs a descheduled
// thread's share is taken over by the others instead of stalling everyone at the barrier. Work items write
// disjoint outputs, so the result does not depend on which thread runs which item.
static inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// An output value in the image dtype: clamp to [0, 1], scale, round half to even. Templated on the SIMD
// traits only so that each instruction set's file keeps its own copy. The rounding adds and takes away 2^23,
// which leaves a float in [0, 2^23) rounded to an integer by the add's own round-to-nearest-even: the bits of
// std::nearbyint, which without SSE4.1's ROUNDSS (the files built for any x86-64) is a library call a value.
// The empty asm keeps the product a rounded float: contracted into a multiply-add with 2^23, the files built
// with FMA would round the exact product instead.
template <class S, class T>
inline T image_value(float v, float scale) {
  v = v < 0.f ? 0.f : (v > 1.f ? 1.f : v);
  if constexpr (sizeof(T) == 4) {
    return v;
  } else {
    constexpr float kTwoTo23 = 8388608.f;
    static_assert(sizeof(T) <= 2, "scales up to 65535, far below 2^23");
    float scaled = v * scale;
    asm("" : "+x"(scaled));
    return T((scaled + kTwoTo23) - kTwoTo23);
  }
}

// One instruction set's kernels, filled by field name in its kernels_<isa>.cpp; a null entry: not on this path.
struct CpuKernels {
  const char* name = "";
  void (*head)(const HeadParams&, const ExecContext&) = nullptr;
  void (*conv3x3)(const Conv3x3Params&, const ExecContext&) = nullptr;       // fp32 Winograd F(4x4, 3x3)
  void (*conv3x3_bf16)(const Conv3x3Params&, const ExecContext&) = nullptr;  // bf16 products (AVX512_BF16)
  int conv3x3_bf16_tile = 2;  // outputs conv3x3_bf16 computes as one tile: 2 (Winograd F(2x2)), 1 (direct)
  // Whether conv3x3_bf16 reads a bf16 map (in_bf16) and stores a bias_prelu output as bf16 (out_bf16) for these
  // weights, with the bits it gives on float32 maps (null: never)
  bool (*conv3x3_bf16_maps)(const PackedConv3x3&) = nullptr;
  // A residual dense block at bf16, giving conv3x3_bf16's bits conv by conv (null: the convs run one by one)
  void (*dense_block_bf16)(const DenseBlockParams&, const ExecContext&) = nullptr;
  bool (*dense_block_fits)(const DenseBlockParams&) = nullptr;  // whether dense_block_bf16 runs these weights
  // A residual dense block on u8 codes, each part of the concatenation with its own (null: not on this path)
  void (*dense_block_int8)(const DenseBlockParams&, const ExecContext&) = nullptr;
  bool (*dense_block_int8_fits)(const DenseBlockParams&) = nullptr;
  void (*tail)(const TailParams&, const ExecContext&) = nullptr;       // fp32: nine 3x3 sub-kernels by F(3x3)
  int tail_tile_at_bf16 = 3;  // outputs `tail` computes as one tile when the float layers run bf16: 3, 6 on tiles
  void (*tail_bf16)(const TailParams&, const ExecContext&) = nullptr;  // reads a bf16 map (AVX512_BF16 stores)
  int tail_bf16_input_tile = 1;  // outputs tail_bf16 computes as one tile: 1 (direct), 6 (on AMX tiles)
  bool tail_3x3 = false;  // tail and tail_bf16 also run a 3x3 tail (TailParams::kernel 3) from its tiles' weights
  void (*conv3x3_int8)(const Conv3x3Int8Params&, const ExecContext&) = nullptr;  // null: no int8 path
  void (*quantize_codes)(const QuantizeParams&, const ExecContext&) = nullptr;   // float32 map -> codes
  int int8_weight_max = 0;     // weight codes lie in [-max, max]
  bool int8_winograd = false;  // conv3x3_int8 reads PackedConv3x3Int8::u (Winograd F(2x2)) rather than w
  bool int8_u16_codes = false; // conv3x3_int8 and quantize_codes also read and write u16 code maps
};

const CpuKernels& kernels_scalar();
#ifdef SRGAN_FAST_HAVE_AVX2
const CpuKernels& kernels_avx2();
#endif
#ifdef SRGAN_FAST_HAVE_AVX512
const CpuKernels& kernels_avx512();
#endif
#ifdef SRGAN_FAST_HAVE_AMX
const CpuKernels& kernels_amx();           // bf16 and int8 3x3 convs on AMX tiles, the rest as avx512
const CpuKernels& kernels_amx_emulated();  // the same on the tiles' software model (any AVX-512 CPU)
// The tile instructions against their model on one conv at this precision (once per process): "" when they
// agree or where the CPU and OS do not grant that precision's tiles, else what differed.
std::string amx_self_check(Precision precision);
// The tile unit's rate in ops/s (2 per multiply-add) on `threads` threads over `seconds`, multiplying operands
// that stay in tiles; throws std::invalid_argument where the CPU and OS do not grant that precision's tiles.
double amx_peak(Precision precision, int threads, double seconds);
#endif

}  // namespace srgan_fast::cpu
