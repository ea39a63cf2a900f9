// Owning handles for CUDA resources (device and pinned memory, streams, events, graphs); every call checked.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "ops/cuda/cuda_check.h"

namespace srgan_fast::cuda {

// Makes `device` current for a scope and restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }  // destructors must not throw; restoring cannot fail here
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// A host-to-device copy that is complete on return. cudaMemcpy from pageable memory may return before the
// DMA lands, and the engine's non-blocking streams are not ordered after the legacy stream it runs on.
inline void copy_host_to_device(void* device, const void* host, size_t bytes) {
  CUDA_CHECK(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaDeviceSynchronize());
}

// Move-only owner of one allocation made by Alloc/freed by Free (device or pinned host memory).
template <cudaError_t (*Free)(void*)>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Buffer&& other) noexcept : data_(std::exchange(other.data_, nullptr)), bytes_(other.bytes_) {}
  Buffer& operator=(Buffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    if (data_ != nullptr) Free(data_);
  }
  void* get() const { return data_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  size_t bytes() const { return bytes_; }

 protected:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

inline cudaError_t free_host(void* p) { return cudaFreeHost(p); }

class DeviceBuffer : public Buffer<cudaFree> {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) {
    bytes_ = bytes;
    if (bytes > 0) CUDA_CHECK(cudaMalloc(&data_, bytes));  // cudaMalloc aligns to >= 256 bytes
  }
};

class PinnedBuffer : public Buffer<free_host> {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes) {
    bytes_ = bytes;
    if (bytes > 0) CUDA_CHECK(cudaMallocHost(&data_, bytes));
  }
};

class Stream {
 public:
  Stream() { CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class Event {
 public:
  // Synchronisation events skip timing (cheaper); pass cudaEventDefault for one that cudaEventElapsedTime reads.
  explicit Event(unsigned flags = cudaEventDisableTiming) { CUDA_CHECK(cudaEventCreateWithFlags(&event_, flags)); }
  ~Event() { cudaEventDestroy(event_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// An instantiated CUDA graph (the captured forward of one plan and I/O slot).
class GraphExec {
 public:
  GraphExec() = default;
  GraphExec(GraphExec&& other) noexcept : exec_(std::exchange(other.exec_, nullptr)) {}
  GraphExec& operator=(GraphExec&& other) noexcept {
    std::swap(exec_, other.exec_);
    return *this;
  }
  ~GraphExec() {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
  }
  // Takes a captured graph, instantiates it, and releases the graph (the executable is self-contained).
  explicit GraphExec(cudaGraph_t graph) {
    const cudaError_t status = cudaGraphInstantiate(&exec_, graph, 0);
    cudaGraphDestroy(graph);
    if (status != cudaSuccess) throw_cuda_error(status, "cudaGraphInstantiate(&exec_, graph, 0)", __FILE__, __LINE__);
  }
  cudaGraphExec_t get() const { return exec_; }
  explicit operator bool() const { return exec_ != nullptr; }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace srgan_fast::cuda
