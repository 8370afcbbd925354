// The kernels of wkv7_cuda.cu, built by the host compiler with cuda_on_host.h and launched on the
// CPU: a plain C interface for src/wkv7/cuda_emulated.py, so that the tests run the CUDA source
// itself on machines without a GPU. Pointers are CPU pointers; s0, ckpt (forward) and gsT may be null.

#include "wkv7_cuda.cu"

extern "C" {

void wkv7_host_forward(int B, int T, int H, const bf16 *r, const bf16 *w, const bf16 *k, const bf16 *v,
                       const bf16 *a, const bf16 *b, const float *s0, bf16 *y, float *sT, float *ckpt) {
    cuda_on_host::launch(B * H, _N_, wkv7_forward_kernel, T, H, r, w, k, v, a, b, s0, y, sT, ckpt);
}

void wkv7_host_backward(int B, int T, int H, const bf16 *r, const bf16 *w, const bf16 *k, const bf16 *v,
                        const bf16 *a, const bf16 *b, const float *ckpt, const bf16 *gy, const float *gsT,
                        bf16 *gr, bf16 *gw, bf16 *gk, bf16 *gv, bf16 *ga, bf16 *gb, float *gs0, float *hist) {
    cuda_on_host::launch(B * H, _N_, wkv7_backward_kernel, T, H, r, w, k, v, a, b, ckpt, gy, gsT,
                         gr, gw, gk, gv, ga, gb, gs0, hist);
}

int wkv7_host_checkpoints(int T) { return checkpoints(T); }
int wkv7_host_span() { return _L_; }

}  // extern "C"
