// Included first by every kernel template header (winograd_kernels.h, head_tail_kernels.h, ...), whose code
// lives inside the instruction set's own namespace, srgan_fast::cpu::SRGAN_FAST_ISA: every function there,
// template or not, gets a distinct symbol per instruction set, so the linker can never pick an AVX-512 copy
// for a path that runs on an AVX2-only CPU. Each kernels_<isa>.cpp defines SRGAN_FAST_ISA first.
#pragma once

#ifndef SRGAN_FAST_ISA
#error "define SRGAN_FAST_ISA (the instruction set's namespace) before including the kernel templates"
#endif
