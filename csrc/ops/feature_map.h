// Feature maps between layers: NHWC float32 with a zero halo around every image, so that convolutions read
// their padding from memory instead of testing borders in the inner loops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define SRGAN_FAST_HAVE_MMAP 1
#endif

namespace srgan_fast {

// Every buffer carries this many zero pixels on each side: the 9x9 tail's 3x3 Winograd patches start 4
// pixels before the image and read up to 5 past its bottom/right edge (3 + 2 when the size is not a multiple
// of 3); the 4x4-output Winograd tiles of the 3x3 convs read up to 1 + 3 past it.
constexpr int kHalo = 6;
// Channel counts are padded to this (the widest SIMD vector, in floats); the padding channels hold zeros.
constexpr int kChannelAlign = 16;

inline int round_up(int x, int multiple) { return (x + multiple - 1) / multiple * multiple; }
// Rounded towards minus infinity: the source row or column of a nearest-upsampled map's pixel, halo included
// (pixel -1 of the upsampled map is pixel -1 of its source).
inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// A view of one [n, h, w, c] feature map (c = channel stride, a multiple of kChannelAlign) of float32, of
// bf16 bits (uint16_t) where the bf16 path stores a map only to read it as bf16 products, or of uint8 codes.
template <class T>
struct FeatureMapT {
  T* data = nullptr;          // pixel (0, 0) of image 0; rows/columns -kHalo .. h-1+kHalo are addressable
  int n = 0, h = 0, w = 0, c = 0;
  int64_t row_stride = 0;     // elements from one row to the next: (w + 2 * kHalo) * c
  int64_t image_stride = 0;   // elements from one image to the next: (h + 2 * kHalo) * row_stride

  // Always inlined: the per-instruction-set kernels call it, and an out-of-line copy compiled with AVX-512
  // flags must never be what another path's call resolves to.
  __attribute__((always_inline)) T* at(int image, int y, int x) const {
    return data + image * image_stride + y * row_stride + int64_t(x) * c;
  }
};
using FeatureMap = FeatureMapT<float>;
using FeatureMapBf16 = FeatureMapT<uint16_t>;
// int8 precision: the input of an int8 conv, quantized (see QuantCodes); its halo holds the zero point.
using FeatureMapU8 = FeatureMapT<uint8_t>;
// ... or of u16 codes, where the path's integer sums allow codes past 255 (see QuantCodes).
using FeatureMapU16 = FeatureMapT<uint16_t>;

// std::vector storage on 64-byte boundaries, for packed weights and rows that AMX tile loads read: a tile row
// that straddles two cache lines loads at about half the speed (measured on a Xeon with AMX).
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t count) { return static_cast<T*>(::operator new(count * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* pointer, size_t) { ::operator delete(pointer, std::align_val_t(64)); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};
template <class T>
using CacheLineVector = std::vector<T, CacheLineAllocator<T>>;

// 64-byte aligned float storage, zero-initialised; owns the memory behind FeatureMaps and scratch.
//
// Large buffers are fresh anonymous mappings, which the kernel hands out zeroed, so a new buffer is not
// cleared here: its pages are first touched (faulted in and zeroed by the kernel) inside the parallel
// kernels that write them, spread over every core, instead of by one thread in a memset before the first run.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { release(); }

  // Grows (never shrinks) to hold `count` floats, all zero.
  void reset_zero(size_t count) {
    if (count <= size_) {
      if (count) std::memset(data_, 0, count * sizeof(float));
      return;
    }
    release();
    const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
#ifdef SRGAN_FAST_HAVE_MMAP
    if (bytes >= kMappedBytes) {
      void* mapped = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mapped == MAP_FAILED) throw std::bad_alloc();
      data_ = static_cast<float*>(mapped), size_ = count, mapped_bytes_ = bytes;
      return;
    }
#endif
    data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
    size_ = count;
    std::memset(data_, 0, bytes);
  }
  float* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  static constexpr size_t kMappedBytes = size_t(1) << 20;

  void release() {
#ifdef SRGAN_FAST_HAVE_MMAP
    if (mapped_bytes_) munmap(data_, mapped_bytes_);
    else
#endif
      std::free(data_);
    data_ = nullptr, size_ = 0, mapped_bytes_ = 0;
  }

  float* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_bytes_ = 0;  // nonzero: data_ is an anonymous mapping of this many bytes
};

inline size_t feature_map_floats(int n, int h, int w, int c) {
  return size_t(n) * (h + 2 * kHalo) * (w + 2 * kHalo) * c;
}

// The view of a buffer laid out for [n, h, w, c] with halos (the buffer must hold feature_map_floats()
// elements of T).
template <class T>
inline FeatureMapT<T> make_feature_map(T* base, int n, int h, int w, int c) {
  FeatureMapT<T> f;
  f.n = n, f.h = h, f.w = w, f.c = c;
  f.row_stride = int64_t(w + 2 * kHalo) * c;
  f.image_stride = int64_t(h + 2 * kHalo) * f.row_stride;
  f.data = base + kHalo * f.row_stride + int64_t(kHalo) * c;
  return f;
}

}  // namespace srgan_fast
