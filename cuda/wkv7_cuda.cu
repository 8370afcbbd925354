// WKV7 (RWKV-7) forward and backward for one head size N (compile with -D_N_=64).
//
// Layout: r, w, k, v, a, b, y: (B, T, C) bf16, C = H * N, w raw (decay exp(-exp(w))); states:
// (B, H, N, N) fp32 indexed [value i, key j], as in the `rwkv` package. One thread block per
// (batch, head), N threads: thread i owns row i of the state.
//
//   sa_t[i]    = sum_j S_{t-1}[i, j] a_t[j]
//   S_t[i, j]  = S_{t-1}[i, j] d_t[j] + sa_t[i] b_t[j] + v_t[i] k_t[j],     d = exp(-exp(w))
//   y_t[i]     = sum_j S_t[i, j] r_t[j]
//
// Every row of S evolves on its own (row i needs only row i and the step's vectors), so the
// forward needs no communication between threads beyond sharing each step's r, d, k, a, b.
//
// Backward, with G_t the gradient of S_t (G_T = grad of the final state), going down in t:
//   G_t        += gy_t r_t^T                                  (y_t = S_t r_t)
//   gv_t[i]     = sum_j G_t[i, j] k_t[j]        gsa[i] = sum_j G_t[i, j] b_t[j]
//   gk_t[j]     = sum_i G_t[i, j] v_t[i]        gb_t[j] = sum_i G_t[i, j] sa_t[i]
//   gd_t[j]     = sum_i G_t[i, j] S_{t-1}[i, j] ga_t[j] = sum_i gsa[i] S_{t-1}[i, j]
//   gr_t[j]     = sum_i gy_t[i] S_t[i, j],      gw_t[j] = gd_t[j] d_t[j] (-exp(w_t[j]))
//   G_{t-1}     = G_t diag(d_t) + gsa a_t^T
// The rows of G also evolve on their own; the key-indexed gradients (sums over rows i) are
// taken by thread j from the rows of G_t and S_{t-1} the threads put in shared memory.
//
// S_{t-1} for the backward: the forward stores the state every _L_ steps (`ckpt`, only when a
// backward will follow); the backward recomputes each span of _L_ states forward from its
// checkpoint into a scratch buffer (`hist`), then walks the span backwards. Nothing is
// inverted, so no error grows with the distance to a checkpoint, whatever the decay.
//
// The same file builds for the CPU (no __CUDACC__): cuda_on_host.h provides the CUDA
// execution model there, and the host launchers live in wkv7_on_host.cpp (src/wkv7/cuda_emulated.py).

#include "kernel_common.h"
#define _L_ 16                                    // steps between stored states


// The number of stored states for T steps: one at the start of every span of _L_ steps.
__host__ __device__ __forceinline__ int checkpoints(int T) { return (T + _L_ - 1) / _L_; }

__global__ void __launch_bounds__(_N_) wkv7_forward_kernel(
    const int T, const int H,
    const bf16 *__restrict__ r, const bf16 *__restrict__ w, const bf16 *__restrict__ k,
    const bf16 *__restrict__ v, const bf16 *__restrict__ a, const bf16 *__restrict__ b,
    const float *__restrict__ s0, bf16 *__restrict__ y, float *__restrict__ sT, float *__restrict__ ckpt)
{
    const int bh = blockIdx.x, bb = bh / H, h = bh % H, i = threadIdx.x;
    const int C = H * _N_;
    const int64_t row = (int64_t)bh * _N_ * _N_ + (int64_t)i * _N_;
    const int64_t ckpt_base = (int64_t)bh * checkpoints(T) * _N_ * _N_ + (int64_t)i * _N_;
    __shared__ float rs[_N_], ds[_N_], ks[_N_], as[_N_], bs[_N_];

    float S[_N_];
#pragma unroll
    for (int j = 0; j < _N_; j++) S[j] = s0 ? s0[row + j] : 0.0f;

    int64_t off = (int64_t)bb * T * C + h * _N_ + i;
    for (int t = 0; t < T; t++, off += C) {
        if (ckpt && t % _L_ == 0) {
            const int64_t at = ckpt_base + (int64_t)(t / _L_) * _N_ * _N_;
#pragma unroll
            for (int j = 0; j < _N_; j++) ckpt[at + j] = S[j];
        }
        __syncthreads();                              // the previous step is done with the vectors
        rs[i] = f32(r[off]); ds[i] = expf(-expf(f32(w[off]))); ks[i] = f32(k[off]);
        as[i] = f32(a[off]); bs[i] = f32(b[off]);
        const float vi = f32(v[off]);
        __syncthreads();
        float sa = 0.0f;
#pragma unroll
        for (int j = 0; j < _N_; j++) sa += S[j] * as[j];
        float yi = 0.0f;
#pragma unroll
        for (int j = 0; j < _N_; j++) {
            S[j] = S[j] * ds[j] + sa * bs[j] + vi * ks[j];
            yi += S[j] * rs[j];
        }
        y[off] = __float2bfloat16(yi);
    }
#pragma unroll
    for (int j = 0; j < _N_; j++) sT[row + j] = S[j];
}

__global__ void __launch_bounds__(_N_) wkv7_backward_kernel(
    const int T, const int H,
    const bf16 *__restrict__ r, const bf16 *__restrict__ w, const bf16 *__restrict__ k,
    const bf16 *__restrict__ v, const bf16 *__restrict__ a, const bf16 *__restrict__ b,
    const float *__restrict__ ckpt, const bf16 *__restrict__ gy, const float *__restrict__ gsT,
    bf16 *__restrict__ gr, bf16 *__restrict__ gw, bf16 *__restrict__ gk, bf16 *__restrict__ gv,
    bf16 *__restrict__ ga, bf16 *__restrict__ gb, float *__restrict__ gs0, float *__restrict__ hist)
{
    const int bh = blockIdx.x, bb = bh / H, h = bh % H, i = threadIdx.x;
    const int C = H * _N_;
    const int64_t row = (int64_t)bh * _N_ * _N_ + (int64_t)i * _N_;
    const int64_t ckpt_base = (int64_t)bh * checkpoints(T) * _N_ * _N_ + (int64_t)i * _N_;
    const int64_t hist_base = (int64_t)bh * _L_ * _N_ * _N_ + (int64_t)i * _N_;
    const int64_t seq = (int64_t)bb * T * C + h * _N_;
    __shared__ float rs[_N_], ds[_N_], ks[_N_], as[_N_], bs[_N_], gys[_N_], vs[_N_], sas[_N_], gsas[_N_];
    __shared__ float Gs[_N_][_N_ + 1], Ps[_N_][_N_ + 1];   // rows of G_t and S_{t-1}; +1: no bank conflicts

    float G[_N_];
#pragma unroll
    for (int j = 0; j < _N_; j++) G[j] = gsT ? gsT[row + j] : 0.0f;

    for (int c = checkpoints(T) - 1; c >= 0; c--) {
        const int t0 = c * _L_, t1 = (t0 + _L_ < T) ? t0 + _L_ : T;
        const int64_t start = ckpt_base + (int64_t)c * _N_ * _N_;
        // the span's states, forward from its checkpoint: hist[t - t0] = S_t. The row is kept in this
        // thread's row of Ps, not in registers, which hold G for the whole kernel.
        float *S = Ps[i];
        __syncthreads();                              // every thread is done reading the last span's Ps
#pragma unroll
        for (int j = 0; j < _N_; j++) S[j] = ckpt[start + j];
        for (int t = t0; t < t1; t++) {
            const int64_t off = seq + (int64_t)t * C + i;
            __syncthreads();
            ds[i] = expf(-expf(f32(w[off]))); ks[i] = f32(k[off]); as[i] = f32(a[off]); bs[i] = f32(b[off]);
            const float vi = f32(v[off]);
            __syncthreads();
            float sa = 0.0f;
#pragma unroll
            for (int j = 0; j < _N_; j++) sa += S[j] * as[j];
            const int64_t at = hist_base + (int64_t)(t - t0) * _N_ * _N_;
#pragma unroll
            for (int j = 0; j < _N_; j++) {
                S[j] = S[j] * ds[j] + sa * bs[j] + vi * ks[j];
                hist[at + j] = S[j];
            }
        }
        // the span backwards
        for (int t = t1 - 1; t >= t0; t--) {
            const int64_t off = seq + (int64_t)t * C + i;
            __syncthreads();                          // the previous step is done with the shared values
            const float w_raw = f32(w[off]);
            rs[i] = f32(r[off]); ds[i] = expf(-expf(w_raw)); ks[i] = f32(k[off]);
            as[i] = f32(a[off]); bs[i] = f32(b[off]);
            const float gyi = f32(gy[off]), vi = f32(v[off]);
            gys[i] = gyi; vs[i] = vi;
            const int64_t prev = (t > t0) ? hist_base + (int64_t)(t - 1 - t0) * _N_ * _N_ : start;
            __syncthreads();
            float sa = 0.0f, gvi = 0.0f, gsa = 0.0f;
#pragma unroll
            for (int j = 0; j < _N_; j++) {
                const float p = (t > t0) ? hist[prev + j] : ckpt[prev + j];
                Ps[i][j] = p;
                sa += p * as[j];
                G[j] += gyi * rs[j];
                Gs[i][j] = G[j];
                gvi += G[j] * ks[j];
                gsa += G[j] * bs[j];
            }
            sas[i] = sa; gsas[i] = gsa;
            gv[off] = __float2bfloat16(gvi);
            __syncthreads();
            // thread i as key index j = i: sums over the rows m
            const int j = i;
            float gkj = 0.0f, gbj = 0.0f, gdj = 0.0f, gaj = 0.0f, grj = 0.0f;
#pragma unroll 4
            for (int m = 0; m < _N_; m++) {
                const float g = Gs[m][j], p = Ps[m][j];
                gkj += g * vs[m];
                gbj += g * sas[m];
                gdj += g * p;
                gaj += gsas[m] * p;
                grj += gys[m] * (p * ds[j] + sas[m] * bs[j] + vs[m] * ks[j]);    // gy . S_t[:, j]
            }
            gr[off] = __float2bfloat16(grj);
            gk[off] = __float2bfloat16(gkj);
            gb[off] = __float2bfloat16(gbj);
            ga[off] = __float2bfloat16(gaj);
            gw[off] = __float2bfloat16(gdj * ds[j] * (-expf(w_raw)));
#pragma unroll
            for (int jj = 0; jj < _N_; jj++) G[jj] = G[jj] * ds[jj] + gsa * as[jj];
        }
    }
#pragma unroll
    for (int j = 0; j < _N_; j++) gs0[row + j] = G[j];
}

#ifdef __CUDACC__
// Launchers for wkv7_op.cpp; they return nullptr or the launch error's text.
const char *wkv7_cuda_forward(int B, int T, int H, const bf16 *r, const bf16 *w, const bf16 *k, const bf16 *v,
                              const bf16 *a, const bf16 *b, const float *s0, bf16 *y, float *sT, float *ckpt,
                              cudaStream_t stream) {
    wkv7_forward_kernel<<<B * H, _N_, 0, stream>>>(T, H, r, w, k, v, a, b, s0, y, sT, ckpt);
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

const char *wkv7_cuda_backward(int B, int T, int H, const bf16 *r, const bf16 *w, const bf16 *k, const bf16 *v,
                               const bf16 *a, const bf16 *b, const float *ckpt, const bf16 *gy, const float *gsT,
                               bf16 *gr, bf16 *gw, bf16 *gk, bf16 *gv, bf16 *ga, bf16 *gb, float *gs0, float *hist,
                               cudaStream_t stream) {
    wkv7_backward_kernel<<<B * H, _N_, 0, stream>>>(T, H, r, w, k, v, a, b, ckpt, gy, gsT, gr, gw, gk, gv, ga, gb,
                                                    gs0, hist);
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}
#endif
