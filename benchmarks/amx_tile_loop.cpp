// What bounds the AMX int8 dense block's multiplies (csrc/ops/cpu/amx_dense_block_int8_kernels.h), on one core:
// its 2 x 2 tile loop (4 TDPBUSD per 2 A and 2 B tile loads) walked as ESRGAN's residual dense block walks it
// (five convs of 64, 128, 128, 192, 192 padded input codes, 32 output channels but the last's 64, blocks of 32
// pixels along a 128-pixel row, a ring of 7 rows of 192 codes a pixel), with its operands where the kernel has
// them or held in L1. No epilogue and no wavefront: the multiplies alone. Built and run by amx_tile_loop.py.
//
// Prints one JSON object: for each variant, the median over interleaved rounds of its int8 TOP/s.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kWidth = 128, kRingPixels = kWidth + 10, kSlots = 7, kPixelCodes = 192, kRows = 64;
constexpr int kChunks[5] = {1, 2, 2, 3, 3};    // 64-code chunks of each conv's input
constexpr int kCoutBlocks[5] = {1, 1, 1, 1, 2};  // 32-channel blocks of each conv's output
constexpr double kOpsPerStep = 4.0 * 16 * 16 * 64 * 2;  // four TDPBUSD, a multiply and an add each

struct TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// 64-byte aligned storage, `offset` bytes past a cache line (a tile row that straddles two loads at about half
// the speed).
struct Buffer {
  Buffer(size_t bytes, int offset) : storage(bytes + 128, 1), data(aligned(storage.data()) + offset) {}
  static uint8_t* aligned(uint8_t* p) {
    return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
  }
  std::vector<uint8_t> storage;
  uint8_t* data;
};

struct Variant {
  const char* name;
  bool ring_in_l1, weights_in_l1, chunk_major;
  int offset;
};

// The dense block's multiplies over kRows rows; returns TOP/s.
double walk(const Variant& v) {
  Buffer ring(size_t(kSlots) * kRingPixels * kPixelCodes, v.offset);
  std::vector<Buffer> weights;
  for (int k = 0; k < 5; ++k) weights.emplace_back(size_t(9) * kChunks[k] * 2048 * kCoutBlocks[k], v.offset);
  alignas(64) int32_t sums[32][32];
  const int64_t a_stride = v.chunk_major ? 64 : kPixelCodes;
  const auto a_of = [&](int slot, int x, int chunk) -> const uint8_t* {
    if (v.ring_in_l1) return ring.data;
    const uint8_t* row = ring.data + int64_t(slot) * kRingPixels * kPixelCodes;
    return v.chunk_major ? row + (int64_t(chunk) * kRingPixels + x) * 64 : row + int64_t(x) * kPixelCodes + chunk * 64;
  };
  double steps = 0;
  const auto started = std::chrono::steady_clock::now();
  for (int y = 0; y < kRows; ++y)
    for (int k = 0; k < 5; ++k)
      for (int cb = 0; cb < kCoutBlocks[k]; ++cb)
        for (int x0 = 0; x0 < kWidth; x0 += 32) {
          _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
          for (int tap = 0; tap < 9; ++tap)
            for (int chunk = 0; chunk < kChunks[k]; ++chunk) {
              const uint8_t* a = a_of((y + tap / 3) % kSlots, x0 + tap % 3, chunk);
              const uint8_t* b = v.weights_in_l1 ? weights[0].data
                                                 : weights[k].data + ((cb * 9 + tap) * kChunks[k] + chunk) * 2048;
              _tile_loadd(6, b, 128);
              _tile_loadd(4, a, a_stride);
              _tile_dpbusd(0, 4, 6);
              _tile_loadd(7, b + 64, 128);
              _tile_dpbusd(1, 4, 7);
              _tile_loadd(5, a + 16 * a_stride, a_stride);
              _tile_dpbusd(2, 5, 6);
              _tile_dpbusd(3, 5, 7);
              steps += 1;
            }
          _tile_stored(0, &sums[0][0], 128); _tile_stored(1, &sums[0][16], 128);
          _tile_stored(2, &sums[16][0], 128); _tile_stored(3, &sums[16][16], 128);
        }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return steps * kOpsPerStep / seconds / 1e12;
}

// TDPBUSD alone, its operands held in tiles: the unit's rate on this core.
double peak() {
  alignas(64) static uint8_t zeros[1024];
  _tile_loadd(4, zeros, 64); _tile_loadd(5, zeros, 64); _tile_loadd(6, zeros, 64); _tile_loadd(7, zeros, 64);
  _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
  constexpr long kSteps = 2000000;
  const auto started = std::chrono::steady_clock::now();
  for (long i = 0; i < kSteps; ++i) {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return kSteps * kOpsPerStep / seconds / 1e12;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  constexpr long kArchRequestPermission = 0x1023, kXfeatureTileData = 18;
  if (syscall(SYS_arch_prctl, kArchRequestPermission, kXfeatureTileData) != 0) {
    std::fprintf(stderr, "the OS does not grant AMX tile data to this process\n");
    return 1;
  }
  TileConfig config;
  for (int t = 0; t < 8; ++t) config.rows[t] = 16, config.colsb[t] = 64;
  _tile_loadconfig(&config);
  const Variant variants[] = {
      {"both_in_l1", true, true, false, 0},
      {"weights_in_l1", false, true, false, 0},
      {"ring_in_l1", true, false, false, 0},
      {"dense_block", false, false, false, 0},
      {"dense_block_chunk_major_ring", false, false, true, 0},
      {"dense_block_16_bytes_off_cache_lines", false, false, false, 16},
  };
  constexpr int kVariants = sizeof(variants) / sizeof(variants[0]);
  std::vector<std::vector<double>> rates(kVariants + 1);
  for (int round = 0; round < rounds; ++round) {
    rates[0].push_back(peak());
    for (int i = 0; i < kVariants; ++i) rates[i + 1].push_back(walk(variants[i]));
  }
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::string json = "{\"rounds\": " + std::to_string(rounds) + ", \"top_s_one_core\": {\"tdpbusd_only\": " +
                     std::to_string(median(rates[0]));
  for (int i = 0; i < kVariants; ++i)
    json += std::string(", \"") + variants[i].name + "\": " + std::to_string(median(rates[i + 1]));
  std::printf("%s}}\n", json.c_str());
  _tile_release();
  return 0;
}
