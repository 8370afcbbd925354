// WKV6 forward and backward for one head size N (compile with -D_N_=64).
//
// Layout: r, k, v, w, y: (B, T, C) bf16, C = H * N; u: (H, N) fp32; states: (B, H, N, N)
// fp32 indexed [key j, value i]. One thread block per (batch, head), N threads.
//
//   y_t[i]    = sum_j r_t[j] (u[j] k_t[j] v_t[i] + S_{t-1}[j, i])
//   S_t[j, i] = d_t[j] S_{t-1}[j, i] + k_t[j] v_t[i],     d = exp(a), a = -exp(w)
//
// Backward, with dS_t the gradient of S_t (dS_T = grad of the final state):
//   dS_{t-1}[j, :] = d_t[j] dS_t[j, :] + r_t[j] gy_t
//   gr_t[j] = u[j] k_t[j] (v_t . gy_t) + A_t[j],          A_t[j]  = S_{t-1}[j, :] . gy_t
//   gk_t[j] = u[j] r_t[j] (v_t . gy_t) + Bq_t[j],         Bq_t[j] = dS_t[j, :] . v_t
//   gv_t[i] = sum_j k_t[j] (u[j] r_t[j] gy_t[i] + dS_t[j, i])
//   gu[j]   = sum_t r_t[j] k_t[j] (v_t . gy_t)
//   dL/da_t[j] = dS_t[j, :] . (d_t[j] S_{t-1}[j, :]) = phi_t[j] - k_t[j] Bq_t[j]
// where phi_t[j] = dS_t[j, :] . S_t[j, :] obeys, going backwards,
//   phi_{t-1}[j] = phi_t[j] - k_t[j] Bq_t[j] + r_t[j] A_t[j],   phi_T = dS_T . S_T.
// So the decay gradient needs no stored states: the forward-direction pass records
// r_t A_t and phi_T, the reverse pass runs phi back down. No per-T register arrays.
//
// Accuracy of gw: dL/da_t is a reverse cumulative sum (phi carries every later step's terms
// down to step t), so its fp32 rounding errors add up like a random walk over the T - t later
// steps: the absolute error of gw grows like sqrt(T), as in every WKV6 kernel, while its error
// relative to the sum's own magnitude stays at fp32's.
//
// Memory latency: every step first takes the inputs loaded during the previous step, then
// starts the loads of the next step (t + 1, or t - 1 going backwards), so each main-memory
// round trip overlaps a whole step of arithmetic instead of stalling it.
//
// The same file builds for the CPU (no __CUDACC__): cuda_on_host.h provides the CUDA
// execution model there, and the host launchers live with the caller (src/wkv6/cuda_emulated.py).

#include "kernel_common.h"

__device__ __forceinline__ float log_decay(float w) { return -expf(w); }

// Forward. Thread i owns column i of the state.
__global__ void __launch_bounds__(_N_) wkv6_forward_kernel(
    const int T, const int H,
    const bf16 *__restrict__ r, const bf16 *__restrict__ k, const bf16 *__restrict__ v,
    const bf16 *__restrict__ w, const float *__restrict__ u, const float *__restrict__ s0,
    bf16 *__restrict__ y, float *__restrict__ sT)
{
    const int bh = blockIdx.x, b = bh / H, h = bh % H, i = threadIdx.x;
    const int C = H * _N_;
    const int64_t state_base = (int64_t)bh * _N_ * _N_;
    __shared__ float rs[_N_], ks[_N_], ds[_N_], us[_N_];

    float S[_N_];
#pragma unroll
    for (int j = 0; j < _N_; j++) S[j] = s0 ? s0[state_base + j * _N_ + i] : 0.0f;
    us[i] = u[h * _N_ + i];

    int64_t off = (int64_t)b * T * C + h * _N_ + i;
    bf16 r_next = r[off], k_next = k[off], v_next = v[off], w_next = w[off];
    for (int t = 0; t < T; t++, off += C) {
        const float rt = f32(r_next), kt = f32(k_next), vi = f32(v_next), wt = f32(w_next);
        if (t + 1 < T) {
            r_next = r[off + C]; k_next = k[off + C]; v_next = v[off + C]; w_next = w[off + C];
        }
        __syncthreads();
        rs[i] = rt;
        ks[i] = kt;
        ds[i] = expf(log_decay(wt));
        __syncthreads();
        float yi = 0.0f;
#pragma unroll
        for (int j = 0; j < _N_; j++) {
            const float kv = ks[j] * vi;
            yi += rs[j] * (us[j] * kv + S[j]);
            S[j] = S[j] * ds[j] + kv;
        }
        y[off] = __float2bfloat16(yi);
    }
#pragma unroll
    for (int j = 0; j < _N_; j++) sT[state_base + j * _N_ + i] = S[j];
}

// Backward, first pass (forward in time). Thread j owns row j of the state.
// Writes gr, r_t[j] * A_t[j] (fp32 scratch), phi_T and this batch's share of gu.
__global__ void __launch_bounds__(_N_) wkv6_backward_forward_pass_kernel(
    const int T, const int H,
    const bf16 *__restrict__ r, const bf16 *__restrict__ k, const bf16 *__restrict__ v,
    const bf16 *__restrict__ w, const float *__restrict__ u, const float *__restrict__ s0,
    const bf16 *__restrict__ gy, const float *__restrict__ gsT,
    bf16 *__restrict__ gr, float *__restrict__ rA, float *__restrict__ phiT, float *__restrict__ gu_part)
{
    const int bh = blockIdx.x, b = bh / H, h = bh % H, j = threadIdx.x;
    const int C = H * _N_;
    const int64_t state_base = (int64_t)bh * _N_ * _N_;
    __shared__ float vs[_N_], gys[_N_];

    float S[_N_];
#pragma unroll
    for (int i = 0; i < _N_; i++) S[i] = s0 ? s0[state_base + j * _N_ + i] : 0.0f;
    const float uj = u[h * _N_ + j];
    float gu = 0.0f;

    int64_t off = (int64_t)b * T * C + h * _N_ + j;
    bf16 r_next = r[off], k_next = k[off], v_next = v[off], w_next = w[off], gy_next = gy[off];
    for (int t = 0; t < T; t++, off += C) {
        const float rj = f32(r_next), kj = f32(k_next), vj = f32(v_next), wj = f32(w_next), gyj = f32(gy_next);
        if (t + 1 < T) {
            r_next = r[off + C]; k_next = k[off + C]; v_next = v[off + C]; w_next = w[off + C];
            gy_next = gy[off + C];
        }
        __syncthreads();
        vs[j] = vj;
        gys[j] = gyj;
        __syncthreads();
        const float dj = expf(log_decay(wj));
        float A = 0.0f, vg = 0.0f;
#pragma unroll
        for (int i = 0; i < _N_; i++) {
            A += S[i] * gys[i];
            vg += vs[i] * gys[i];
            S[i] = S[i] * dj + kj * vs[i];
        }
        gr[off] = __float2bfloat16(uj * kj * vg + A);
        rA[off] = rj * A;
        gu += rj * kj * vg;
    }
    float phi = 0.0f;
    if (gsT) {
#pragma unroll
        for (int i = 0; i < _N_; i++) phi += gsT[state_base + j * _N_ + i] * S[i];
    }
    phiT[(int64_t)bh * _N_ + j] = phi;
    gu_part[(int64_t)bh * _N_ + j] = gu;
}

// Backward, second pass (backwards in time). Thread n owns row n of dS (for gk, gw and
// the initial-state gradient) and column n of dS (for gv).
__global__ void __launch_bounds__(_N_) wkv6_backward_reverse_pass_kernel(
    const int T, const int H,
    const bf16 *__restrict__ r, const bf16 *__restrict__ k, const bf16 *__restrict__ v,
    const bf16 *__restrict__ w, const float *__restrict__ u,
    const bf16 *__restrict__ gy, const float *__restrict__ gsT,
    const float *__restrict__ rA, const float *__restrict__ phiT,
    bf16 *__restrict__ gk, bf16 *__restrict__ gv, bf16 *__restrict__ gw, float *__restrict__ gs0)
{
    const int bh = blockIdx.x, b = bh / H, h = bh % H, n = threadIdx.x;
    const int C = H * _N_;
    const int64_t state_base = (int64_t)bh * _N_ * _N_;
    __shared__ float rs[_N_], ks[_N_], ds[_N_], us[_N_], vs[_N_], gys[_N_];

    float dS_row[_N_], dS_col[_N_];
#pragma unroll
    for (int m = 0; m < _N_; m++) {
        dS_row[m] = gsT ? gsT[state_base + n * _N_ + m] : 0.0f;
        dS_col[m] = gsT ? gsT[state_base + m * _N_ + n] : 0.0f;
    }
    us[n] = u[h * _N_ + n];
    float phi = phiT[(int64_t)bh * _N_ + n];

    int64_t off = (int64_t)b * T * C + (int64_t)(T - 1) * C + h * _N_ + n;
    bf16 r_next = r[off], k_next = k[off], v_next = v[off], w_next = w[off], gy_next = gy[off];
    float rA_next = rA[off];
    for (int t = T - 1; t >= 0; t--, off -= C) {
        const float rn = f32(r_next), kn = f32(k_next), vn = f32(v_next), wn = f32(w_next), gyn = f32(gy_next);
        const float rA_t = rA_next;
        if (t > 0) {
            r_next = r[off - C]; k_next = k[off - C]; v_next = v[off - C]; w_next = w[off - C];
            gy_next = gy[off - C]; rA_next = rA[off - C];
        }
        const float an = log_decay(wn);
        __syncthreads();
        rs[n] = rn;
        ks[n] = kn;
        ds[n] = expf(an);
        vs[n] = vn;
        gys[n] = gyn;
        __syncthreads();

        // row n of dS: key index j = n
        const float rj = rn, kj = kn, dj = ds[n];
        float Bq = 0.0f, vg = 0.0f;
#pragma unroll
        for (int i = 0; i < _N_; i++) {
            Bq += dS_row[i] * vs[i];
            vg += vs[i] * gys[i];
            dS_row[i] = dS_row[i] * dj + rj * gys[i];
        }
        gk[off] = __float2bfloat16(us[n] * rj * vg + Bq);
        const float grad_a = phi - kj * Bq;
        gw[off] = __float2bfloat16(grad_a * an);          // da/dw = -exp(w) = a
        phi = grad_a + rA_t;

        // column n of dS: value index i = n
        float gvi = 0.0f;
#pragma unroll
        for (int j = 0; j < _N_; j++) {
            gvi += ks[j] * (us[j] * rs[j] * gyn + dS_col[j]);
            dS_col[j] = dS_col[j] * ds[j] + rs[j] * gyn;
        }
        gv[off] = __float2bfloat16(gvi);
    }
#pragma unroll
    for (int m = 0; m < _N_; m++) gs0[state_base + n * _N_ + m] = dS_row[m];
}

#ifdef __CUDACC__
// Host launchers (called from wkv6_op.cpp; pointers are device pointers, s0/gsT may be null).
// Each returns nullptr, or the CUDA error message of a failed launch.
static const char *launch_error() {
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

const char *wkv6_cuda_forward(int B, int T, int H, const bf16 *r, const bf16 *k, const bf16 *v, const bf16 *w,
                       const float *u, const float *s0, bf16 *y, float *sT, cudaStream_t stream)
{
    wkv6_forward_kernel<<<B * H, _N_, 0, stream>>>(T, H, r, k, v, w, u, s0, y, sT);
    return launch_error();
}

const char *wkv6_cuda_backward(int B, int T, int H, const bf16 *r, const bf16 *k, const bf16 *v, const bf16 *w,
                        const float *u, const float *s0, const bf16 *gy, const float *gsT,
                        bf16 *gr, bf16 *gk, bf16 *gv, bf16 *gw, float *gu_part, float *gs0,
                        float *rA, float *phiT, cudaStream_t stream)
{
    wkv6_backward_forward_pass_kernel<<<B * H, _N_, 0, stream>>>(
        T, H, r, k, v, w, u, s0, gy, gsT, gr, rA, phiT, gu_part);
    if (const char *err = launch_error()) return err;
    wkv6_backward_reverse_pass_kernel<<<B * H, _N_, 0, stream>>>(
        T, H, r, k, v, w, u, gy, gsT, rA, phiT, gk, gv, gw, gs0);
    return launch_error();
}
#endif
