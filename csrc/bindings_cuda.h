// Python bindings of the CUDA backend, called from csrc/bindings.cpp when built with SRGAN_FAST_WITH_CUDA.
#pragma once

#include <pybind11/pybind11.h>

namespace srgan_fast {

// Adds to `m`: cuda_device_count(), cuda_device_name(i), CudaEngine, and the submodule cuda_ops (each fast
// and reference kernel on raw device pointers, plus weight packing) for the kernel tests.
void bind_cuda_engine(pybind11::module_& m);

}  // namespace srgan_fast
