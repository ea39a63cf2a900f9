// CUDA_CHECK: every CUDA runtime call's status becomes a C++ exception naming the call, file and line.
// pybind11 turns std::runtime_error into a Python RuntimeError, so a failing call is never silent.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace srgan_fast::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error in ") + call + " at " + file + ":" + std::to_string(line) +
                           ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

}  // namespace srgan_fast::cuda

#define CUDA_CHECK(call)                                                            \
  do {                                                                              \
    const cudaError_t srgan_fast_status_ = (call);                                  \
    if (srgan_fast_status_ != cudaSuccess)                                          \
      ::srgan_fast::cuda::throw_cuda_error(srgan_fast_status_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad launch configuration surfaces here, named, not at some later unrelated call.
#define CUDA_CHECK_LAUNCH(kernel_name)                                                          \
  do {                                                                                          \
    const cudaError_t srgan_fast_status_ = cudaGetLastError();                                  \
    if (srgan_fast_status_ != cudaSuccess)                                                      \
      ::srgan_fast::cuda::throw_cuda_error(srgan_fast_status_, "launch of " kernel_name, __FILE__, __LINE__); \
  } while (0)
