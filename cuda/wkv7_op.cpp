// PyTorch binding of the WKV7 kernels in wkv7_cuda.cu. Built by src/wkv7/cuda.py with
// torch.utils.cpp_extension.load (ninja), once per head size _N_. Shapes, dtypes and devices are
// validated in Python (src/wkv7/__init__.py); the checks here only guard against a call that
// bypasses it. Only torch/extension.h and the CUDA runtime header are included, so this file also
// compiles (as a check) against a CPU build of torch.

#include <torch/extension.h>
#include <cuda_runtime_api.h>
#include <cuda_bf16.h>
#include <cstdint>
#include <optional>
#include <tuple>

typedef __nv_bfloat16 bf16;
#define _L_ 16                                    // as wkv7_cuda.cu

const char *wkv7_cuda_forward(int B, int T, int H, const bf16 *r, const bf16 *w, const bf16 *k, const bf16 *v,
                              const bf16 *a, const bf16 *b, const float *s0, bf16 *y, float *sT, float *ckpt,
                              cudaStream_t stream);
const char *wkv7_cuda_backward(int B, int T, int H, const bf16 *r, const bf16 *w, const bf16 *k, const bf16 *v,
                               const bf16 *a, const bf16 *b, const float *ckpt, const bf16 *gy, const float *gsT,
                               bf16 *gr, bf16 *gw, bf16 *gk, bf16 *gv, bf16 *ga, bf16 *gb, float *gs0, float *hist,
                               cudaStream_t stream);

namespace {

const bf16 *in(const torch::Tensor &x) { return reinterpret_cast<const bf16 *>(x.data_ptr<at::BFloat16>()); }
bf16 *out(torch::Tensor &x) { return reinterpret_cast<bf16 *>(x.data_ptr<at::BFloat16>()); }
cudaStream_t as_stream(int64_t handle) { return reinterpret_cast<cudaStream_t>(static_cast<intptr_t>(handle)); }

void check(const torch::Tensor &x, const char *name, at::ScalarType dtype) {
    TORCH_CHECK(x.is_cuda() && x.scalar_type() == dtype && x.is_contiguous(), "wkv7 cuda: ", name,
                " must be a contiguous CUDA tensor of ", dtype, ", got ", x.scalar_type());
}

void check_sequences(std::initializer_list<const torch::Tensor *> xs) {
    const auto &r = **xs.begin();
    TORCH_CHECK(r.dim() == 3 && r.size(2) % _N_ == 0 && r.size(1) >= 1, "wkv7 cuda: r must be (B, T >= 1, H * ",
                _N_, "), got ", r.sizes());
    for (const torch::Tensor *x : xs) {
        check(*x, "r, w, k, v, a, b", at::kBFloat16);
        TORCH_CHECK(x->sizes() == r.sizes(), "wkv7 cuda: r, w, k, v, a, b must have one shape");
    }
}

}  // namespace

// Returns (y (B, T, C) bf16, final state (B, H, N, N) fp32, stored states for the backward (empty
// unless keep_states)).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward(
    torch::Tensor r, torch::Tensor w, torch::Tensor k, torch::Tensor v, torch::Tensor a, torch::Tensor b,
    std::optional<torch::Tensor> s0, bool keep_states, int64_t stream) {
    check_sequences({&r, &w, &k, &v, &a, &b});
    const int64_t B = r.size(0), T = r.size(1), H = r.size(2) / _N_;
    if (s0) check(*s0, "state", at::kFloat);
    auto f32 = r.options().dtype(at::kFloat);
    auto y = torch::empty_like(r);
    auto sT = torch::empty({B, H, _N_, _N_}, f32);
    auto ckpt = keep_states ? torch::empty({B, H, (T + _L_ - 1) / _L_, _N_, _N_}, f32) : torch::empty({0}, f32);
    const char *err = wkv7_cuda_forward(B, T, H, in(r), in(w), in(k), in(v), in(a), in(b),
                                        s0 ? s0->data_ptr<float>() : nullptr, out(y), sT.data_ptr<float>(),
                                        keep_states ? ckpt.data_ptr<float>() : nullptr, as_stream(stream));
    TORCH_CHECK(err == nullptr, "wkv7 cuda forward: kernel launch failed: ", err);
    return {y, sT, ckpt};
}

// Returns (gr, gw, gk, gv, ga, gb (B, T, C) bf16, g_state (B, H, N, N) fp32).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor>
backward(torch::Tensor r, torch::Tensor w, torch::Tensor k, torch::Tensor v, torch::Tensor a, torch::Tensor b,
         torch::Tensor ckpt, torch::Tensor gy, std::optional<torch::Tensor> gsT, int64_t stream) {
    check_sequences({&r, &w, &k, &v, &a, &b, &gy});
    check(ckpt, "stored states", at::kFloat);
    if (gsT) check(*gsT, "grad of the final state", at::kFloat);
    const int64_t B = r.size(0), T = r.size(1), H = r.size(2) / _N_;
    auto f32 = r.options().dtype(at::kFloat);
    auto gr = torch::empty_like(r), gw = torch::empty_like(r), gk = torch::empty_like(r), gv = torch::empty_like(r),
         ga = torch::empty_like(r), gb = torch::empty_like(r);
    auto gs0 = torch::empty({B, H, _N_, _N_}, f32);
    auto hist = torch::empty({B, H, _L_, _N_, _N_}, f32);
    const char *err = wkv7_cuda_backward(B, T, H, in(r), in(w), in(k), in(v), in(a), in(b), ckpt.data_ptr<float>(),
                                         in(gy), gsT ? gsT->data_ptr<float>() : nullptr, out(gr), out(gw), out(gk),
                                         out(gv), out(ga), out(gb), gs0.data_ptr<float>(), hist.data_ptr<float>(),
                                         as_stream(stream));
    TORCH_CHECK(err == nullptr, "wkv7 cuda backward: kernel launch failed: ", err);
    return {gr, gw, gk, gv, ga, gb, gs0};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "WKV7 (RWKV-7) recurrence: bf16 in and out, fp32 state";
    m.def("forward", &forward, "(r, w, k, v, a, b, state|None, keep_states, stream) -> (y, final_state, states)");
    m.def("backward", &backward, "(r, w, k, v, a, b, states, gy, g_final_state|None, stream) -> grads");
}
