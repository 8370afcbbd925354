// What every kernel in cuda/ starts with: the CUDA headers (or, built for the CPU without
// __CUDACC__, cuda_on_host.h, which provides the CUDA execution model there), the head size _N_
// given at compile time, the bf16 type and its conversion to float.

#pragma once

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#else
#include "cuda_on_host.h"
#endif
#include <cstdint>

#ifndef _N_
#error "compile with -D_N_=<head size>"
#endif
static_assert(_N_ % 4 == 0 && _N_ <= 64, "head size must be a multiple of 4, at most 64 (RWKV's is 64)");

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float f32(bf16 x) { return __bfloat162float(x); }
