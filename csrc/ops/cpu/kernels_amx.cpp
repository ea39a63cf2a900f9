// The amx kernel tables: the avx512 table with its 3x3 convs on AMX tiles, int8 (amx_int8_kernels.h) and bf16
// (amx_bf16_kernels.h), with the real instructions ("amx") or their software model ("amx_emulated": the same
// kernels on any AVX-512 CPU, for tests). A bf16 conv reading its input upsampled by 2 runs as four 2x2 convs on
// the input (amx_upsampled_kernels.h). Their 9x9 tail, and RRDBNet's 3x3 one, run on bf16 tiles too
// (amx_tail_kernels.h): with the instructions they read their producer's bf16 map; with the model they round
// the fp32 map's rows themselves, since the upsamplers' bf16 stores use AVX512_BF16, which the model's hosts
// may lack. This file alone is compiled with
// -mamx-tile -mamx-int8 -mamx-bf16 (see CMakeLists.txt).
#define SRGAN_FAST_ISA amx
#include "ops/cpu/simd_avx512.h"
#include "ops/cpu/amx_bf16_kernels.h"
#include "ops/cpu/amx_dense_block_int8_kernels.h"
#include "ops/cpu/amx_dense_block_kernels.h"
#include "ops/cpu/amx_int8_kernels.h"
#include "ops/cpu/amx_tail_kernels.h"
#include "ops/cpu/amx_upsampled_kernels.h"
#include "ops/cpu/int8_kernels.h"
#include "ops/cpu/winograd_kernels.h"

#include <chrono>
#include <cmath>
#include <random>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "ops/cpu/cpu_features.h"
#include "ops/packing.h"

namespace srgan_fast::cpu {
namespace {

// The real instructions, written as inline assembly with the tile register as an immediate operand (the
// intrinsics need a literal register in their text, so each register would be spelled out). GCC 12's
// _tile_loadconfig drops all but the first 8 bytes of the configuration, so LDTILECFG is issued here too; and
// loads and stores carry a memory clobber, since vector stores of the epilogue and of packing feed tile loads.
class HardwareTiles {
 public:
  void configure(const TileConfig& config) { asm volatile("ldtilecfg %0" : : "m"(config)); }
  template <int T> void zero() { asm volatile("tilezero %%tmm%c0" : : "i"(T)); }
  template <int T> void load(const void* source, int64_t stride) {
    asm volatile("tileloadd (%0,%1,1), %%tmm%c2" : : "r"(source), "r"(stride), "i"(T) : "memory");
  }
  template <int T> void store(void* destination, int64_t stride) {
    asm volatile("tilestored %%tmm%c2, (%0,%1,1)" : : "r"(destination), "r"(stride), "i"(T) : "memory");
  }
  template <int C, int A, int B> void dpbusd() {
    asm volatile("tdpbusd %%tmm%c2, %%tmm%c1, %%tmm%c0" : : "i"(C), "i"(A), "i"(B));
  }
  template <int C, int A, int B> void dpbf16ps() {
    asm volatile("tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0" : : "i"(C), "i"(A), "i"(B));
  }
  void release() { asm volatile("tilerelease"); }
};

// The tile kernel where the conv fits it, else the VNNI kernel (both end in the same epilogue).
template <class Tiles>
void conv3x3_int8_amx(const Conv3x3Int8Params& p, const ExecContext& ctx) {
  using Simd = avx512::Simd;
  if (amx::amx_int8_fits(*p.weights)) return amx::conv3x3_int8_tiles<Simd, Tiles>(p, ctx);
  amx::conv3x3_int8<Simd>(p, ctx);
}

template <class Tiles>
void conv3x3_bf16_amx(const Conv3x3Params& p, const ExecContext& ctx) {
  using Simd = avx512::Simd;
  if (amx::amx_upsampled_fits(p)) return amx::conv3x3_bf16_upsampled_tiles<Simd, Tiles>(p, ctx);
  if (amx::amx_bf16_fits(*p.weights)) return amx::conv3x3_bf16_tiles<Simd, Tiles>(p, ctx);
  amx::conv3x3_winograd<Simd, float>(p, ctx);
}

// On tiles where the tail's weights were packed for bf16 (the float layers run bf16), else fp32 F(3x3) (9x9 only:
// a 3x3 tail is made only with its tiles' weights).
template <class Tiles>
void tail_amx(const TailParams& p, const ExecContext& ctx) {
  if (p.weight_tiles) return amx::tail_bf16_tiles<Tiles, false>(p, ctx);
  kernels_avx512().tail(p, ctx);
}

template <class Tiles>
void tail_bf16_map_amx(const TailParams& p, const ExecContext& ctx) {
  amx::tail_bf16_tiles<Tiles, true>(p, ctx);
}

template <class Tiles>
void dense_block_bf16_amx(const DenseBlockParams& p, const ExecContext& ctx) {
  amx::dense_block_bf16_tiles<avx512::Simd, Tiles>(p, ctx);
}

bool dense_block_fits_amx(const DenseBlockParams& p) { return amx::amx_dense_block_fits(p); }

template <class Tiles>
void dense_block_int8_amx(const DenseBlockParams& p, const ExecContext& ctx) {
  amx::dense_block_int8_tiles<avx512::Simd, Tiles>(p, ctx);
}

bool dense_block_int8_fits_amx(const DenseBlockParams& p) { return amx::dense_block_int8_fits(p); }

bool bf16_maps_amx(const PackedConv3x3& weights) { return amx::amx_bf16_fits(weights); }

template <class Tiles>
CpuKernels amx_table(const char* name) {
  CpuKernels table = kernels_avx512();
  table.name = name;
  table.conv3x3_int8 = &conv3x3_int8_amx<Tiles>;
  table.conv3x3_bf16 = &conv3x3_bf16_amx<Tiles>, table.conv3x3_bf16_tile = 1;
  table.conv3x3_bf16_maps = &bf16_maps_amx;
  table.dense_block_bf16 = &dense_block_bf16_amx<Tiles>, table.dense_block_fits = &dense_block_fits_amx;
  table.dense_block_int8 = &dense_block_int8_amx<Tiles>, table.dense_block_int8_fits = &dense_block_int8_fits_amx;
  // The tail's row sums go to accumulators by x' mod 6, a 3x3 tail's by x' mod 3 (amx_tail_kernels.h): windows
  // that start on multiples of 6 add each output's contributions in the same order, and so give the same bits.
  table.tail = &tail_amx<Tiles>, table.tail_tile_at_bf16 = amx::kAmxTailWays, table.tail_3x3 = true;
  // The tail reading the upsampler's bf16 map (no rounding of its rows, half the bytes through memory) where the
  // upsampler's store can round to bf16: AVX512_BF16, which every AMX CPU has and the model's hosts may lack.
  const bool bf16_stores = std::is_same_v<Tiles, HardwareTiles>;
  table.tail_bf16 = bf16_stores ? &tail_bf16_map_amx<Tiles> : nullptr, table.tail_bf16_input_tile = amx::kAmxTailWays;
  return table;
}

}  // namespace

const CpuKernels& kernels_amx() {
  static const CpuKernels table = amx_table<HardwareTiles>("amx");
  return table;
}

const CpuKernels& kernels_amx_emulated() {
  static const CpuKernels table = amx_table<EmulatedTiles>("amx_emulated");
  return table;
}

namespace {

// The int8 check: one 64 -> 64 conv on a 5 x 21 map (a full and a partial block per row), random codes, weights
// and compensation, raw sums out through a float epilogue of scale 1: the instructions must give the model's sums.
std::string check_int8() {
  const int cin = 64, cout = 64, h = 5, w = 21;
  std::mt19937 random(7);
  CacheLineVector<int8_t> weights(size_t(9) * cin * cout);  // as packed weights are: tile rows on cache lines
  for (int8_t& v : weights) v = int8_t(int(random() % 255) - 127);
  std::vector<int32_t> compensation(cout, 0);
  std::vector<float> ones(cout, 1.f), zeros(cout, 0.f);
  PackedConv3x3Int8 packed;
  packed.cin = cin, packed.cout = cout, packed.w = weights.data(), packed.compensation = compensation.data();
  packed.scale = ones.data(), packed.bias = zeros.data(), packed.alpha = ones.data();
  AlignedBuffer codes, real, model;
  codes.reset_zero(feature_map_floats(1, h, w, cin) / 4 + 16);
  real.reset_zero(feature_map_floats(1, h, w, cout)), model.reset_zero(feature_map_floats(1, h, w, cout));
  Conv3x3Int8Params p;
  p.in = make_feature_map(reinterpret_cast<uint8_t*>(codes.data()), 1, h, w, cin);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < cin; ++c) p.in.at(0, y, x)[c] = uint8_t(random() % 256);
  p.weights = &packed, p.epilogue = Epilogue::bias_prelu;
  ExecContext ctx;
  ctx.threads = 1;
  p.out = make_feature_map(real.data(), 1, h, w, cout);
  conv3x3_int8_amx<HardwareTiles>(p, ctx);
  p.out = make_feature_map(model.data(), 1, h, w, cout);
  conv3x3_int8_amx<EmulatedTiles>(p, ctx);
  const FeatureMap a = make_feature_map(real.data(), 1, h, w, cout), b = make_feature_map(model.data(), 1, h, w, cout);
  int differing = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < cout; ++c) differing += a.at(0, y, x)[c] != b.at(0, y, x)[c];
  if (differing == 0) return "";
  return "AMX int8 tiles gave " + std::to_string(differing) + " of " + std::to_string(h * w * cout) +
         " sums unlike the instructions' definition";
}

// The bf16 check: one 64 -> 64 conv on random values, the instructions against the model within what the order
// of fp32 additions (and flushed denormals) can change: 1e-5 of the largest value.
std::string check_bf16() {
  const int cin = 64, cout = 64, h = 5, w = 21;
  std::mt19937 random(11);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<float> weight(size_t(cout) * cin * 9), bias(cout), slopes(cout, 1.f);
  for (float& v : weight) v = uniform(random) * 0.1f;
  for (float& v : bias) v = uniform(random);
  const Conv3x3Weights packed = pack_conv3x3(weight.data(), bias.data(), slopes.data(), cout, cin, false, true);
  const PackedConv3x3 view = packed.view();
  AlignedBuffer in, real, model;
  in.reset_zero(feature_map_floats(1, h, w, cin));
  real.reset_zero(feature_map_floats(1, h, w, cout)), model.reset_zero(feature_map_floats(1, h, w, cout));
  Conv3x3Params p;
  p.in = make_feature_map(in.data(), 1, h, w, cin);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < cin; ++c) p.in.at(0, y, x)[c] = uniform(random);
  p.weights = &view, p.epilogue = Epilogue::bias_prelu;
  ExecContext ctx;
  ctx.threads = 1;
  p.out = make_feature_map(real.data(), 1, h, w, cout);
  amx::conv3x3_bf16_tiles<avx512::Simd, HardwareTiles>(p, ctx);
  p.out = make_feature_map(model.data(), 1, h, w, cout);
  amx::conv3x3_bf16_tiles<avx512::Simd, EmulatedTiles>(p, ctx);
  const FeatureMap a = make_feature_map(real.data(), 1, h, w, cout), b = make_feature_map(model.data(), 1, h, w, cout);
  float largest = 0.f, worst = 0.f;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < cout; ++c) {
        largest = std::max(largest, std::fabs(b.at(0, y, x)[c]));
        worst = std::max(worst, std::fabs(a.at(0, y, x)[c] - b.at(0, y, x)[c]));
      }
  if (worst <= 1e-5f * largest) return "";
  return "AMX bf16 tiles differed from the instructions' definition by " + std::to_string(worst) + " (values up to " +
         std::to_string(largest) + ")";
}

}  // namespace

double amx_peak(Precision precision, int threads, double seconds) {
  const CpuFeatures& cpu = cpu_features();
  if (precision == Precision::int8 ? !cpu.amx_int8 : precision == Precision::bf16 ? !cpu.amx_bf16 : true)
    throw std::invalid_argument(std::string("no AMX ") + precision_name(precision) + " here: " +
                                (cpu.amx_missing[0] ? cpu.amx_missing : "this CPU lacks that tile unit"));
  // Four independent accumulators, operands that stay in their tiles: the unit's rate with nothing else to do.
  // The operands are not zero (bf16 1.0, or u8 128 and s8 63), as a layer's are not.
  constexpr int kBatch = 1024;
  const double per_instruction = precision == Precision::int8 ? 16.0 * 16 * 64 * 2 : 16.0 * 16 * 32 * 2;
  double total = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    HardwareTiles tiles;
    tiles.configure(amx_block_config(16, 64));
    tiles.zero<0>(), tiles.zero<1>(), tiles.zero<2>(), tiles.zero<3>();
    alignas(64) uint8_t operand[16][64];
    for (int i = 0; i < 16 * 64; ++i) operand[i / 64][i % 64] = i % 2 ? 0x3F : 0x80;
    tiles.load<4>(operand, 64), tiles.load<5>(operand, 64);
    const auto start = std::chrono::steady_clock::now();
    int64_t instructions = 0;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
      for (int i = 0; i < kBatch; ++i) {
        if (precision == Precision::int8) {
          tiles.dpbusd<0, 4, 5>(), tiles.dpbusd<1, 4, 5>(), tiles.dpbusd<2, 4, 5>(), tiles.dpbusd<3, 4, 5>();
        } else {
          tiles.dpbf16ps<0, 4, 5>(), tiles.dpbf16ps<1, 4, 5>(), tiles.dpbf16ps<2, 4, 5>(), tiles.dpbf16ps<3, 4, 5>();
        }
      }
      instructions += 4 * kBatch;
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    alignas(64) int32_t sink[16][16];
    tiles.store<0>(sink, 64);  // keeps the multiplies live
    tiles.release();
    total += instructions * per_instruction / elapsed;
  }
  return total;
}

std::string amx_self_check(Precision precision) {
  static const std::string int8 = cpu_features().amx_int8 ? check_int8() : "";
  static const std::string bf16 = cpu_features().amx_bf16 ? check_bf16() : "";
  return precision == Precision::int8 ? int8 : precision == Precision::bf16 ? bf16 : "";
}

}  // namespace srgan_fast::cpu
