// The kernels of wkv6_cuda.cu, built by the host compiler with cuda_on_host.h and launched on the
// CPU: a plain C interface for src/wkv6/cuda_emulated.py, so that the tests run the CUDA source
// itself on machines without a GPU. Pointers are CPU pointers; s0 and gsT may be null.

#include "wkv6_cuda.cu"

extern "C" {

void wkv6_host_forward(int B, int T, int H, const bf16 *r, const bf16 *k, const bf16 *v, const bf16 *w,
                       const float *u, const float *s0, bf16 *y, float *sT) {
    cuda_on_host::launch(B * H, _N_, wkv6_forward_kernel, T, H, r, k, v, w, u, s0, y, sT);
}

void wkv6_host_backward(int B, int T, int H, const bf16 *r, const bf16 *k, const bf16 *v, const bf16 *w,
                        const float *u, const float *s0, const bf16 *gy, const float *gsT,
                        bf16 *gr, bf16 *gk, bf16 *gv, bf16 *gw, float *gu_part, float *gs0,
                        float *rA, float *phiT) {
    cuda_on_host::launch(B * H, _N_, wkv6_backward_forward_pass_kernel,
                         T, H, r, k, v, w, u, s0, gy, gsT, gr, rA, phiT, gu_part);
    cuda_on_host::launch(B * H, _N_, wkv6_backward_reverse_pass_kernel,
                         T, H, r, k, v, w, u, gy, gsT, rA, phiT, gk, gv, gw, gs0);
}

}  // extern "C"
