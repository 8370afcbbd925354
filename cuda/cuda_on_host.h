// The CUDA execution model on the CPU, for compiling a .cu file's kernels with the host C++
// compiler: the tests run the kernels' own source this way on machines without a GPU
// (src/wkv6/cuda_emulated.py). Included instead of the CUDA headers when __CUDACC__ is not
// defined. What it provides:
//   __global__, __device__, __forceinline__, __launch_bounds__   no-ops or inline
//   threadIdx, blockIdx, blockDim                                per host thread (thread_local)
//   __shared__                                                   one array per kernel, shared by
//                                                                the block's threads: blocks run
//                                                                one at a time, so it is per block
//   __syncthreads()                                              a barrier of the block's threads
//   __nv_bfloat16, __bfloat162float, __float2bfloat16           bf16 as CUDA rounds it (to nearest
//                                                                even), NaN kept
//   cuda_on_host::launch(grid, block, kernel, args...)           kernel<<<grid, block>>>(args...):
//                                                                each block's threads as host threads
// A kernel with a data race among its threads can give different results from run to run
// here too, as on a GPU.

#pragma once

#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace cuda_on_host {

// A reusable barrier for the threads of one block (C++17: std::barrier is C++20).
class Barrier {
  public:
    explicit Barrier(int count) : count_(count) {}
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        const long generation = generation_;
        if (++arrived_ == count_) {
            arrived_ = 0;
            ++generation_;
            all_arrived_.notify_all();
        } else {
            all_arrived_.wait(lock, [&] { return generation_ != generation; });
        }
    }

  private:
    std::mutex mutex_;
    std::condition_variable all_arrived_;
    const int count_;
    int arrived_ = 0;
    long generation_ = 0;
};

inline thread_local dim3 thread_index, block_index, block_dim;
inline thread_local Barrier *block_barrier = nullptr;

// kernel<<<grid, block>>>(args...) with 1-D grids and blocks: the blocks one after another, each
// block's threads at the same time.
template <class Kernel, class... Args>
void launch(int grid, int block, Kernel kernel, Args... args) {
    for (int b = 0; b < grid; b++) {
        Barrier barrier(block);
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (int t = 0; t < block; t++) {
            threads.emplace_back([&, b, t] {
                block_index.x = b;
                thread_index.x = t;
                block_dim.x = block;
                block_barrier = &barrier;
                kernel(args...);
            });
        }
        for (auto &thread : threads) thread.join();
    }
}

}  // namespace cuda_on_host

#define threadIdx (cuda_on_host::thread_index)
#define blockIdx (cuda_on_host::block_index)
#define blockDim (cuda_on_host::block_dim)

inline void __syncthreads() { cuda_on_host::block_barrier->wait(); }

struct __nv_bfloat16 {
    uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 x) {
    const uint32_t bits = uint32_t(x.bits) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    if (std::isnan(f)) return {uint16_t((bits >> 16) | 0x0040)};        // a quiet NaN, sign kept
    bits += 0x7FFF + ((bits >> 16) & 1);                                 // round to nearest, ties to even
    return {uint16_t(bits >> 16)};
}

typedef void *cudaStream_t;
