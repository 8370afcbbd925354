// PyTorch binding of the WKV6 kernels in wkv6_cuda.cu. Built by src/wkv6/cuda.py with
// torch.utils.cpp_extension.load (ninja), once per head size _N_.
// Shapes, dtypes and devices are validated in Python (src/wkv6/__init__.py), which also
// selects the device and passes the current CUDA stream; the checks here only guard
// against a call that bypasses it. Only torch/extension.h and the CUDA runtime header
// are included, so this file also compiles (as a check) against a CPU build of torch.

#include <torch/extension.h>
#include <cuda_runtime_api.h>
#include <cuda_bf16.h>
#include <cstdint>
#include <optional>
#include <tuple>

typedef __nv_bfloat16 bf16;

const char *wkv6_cuda_forward(int B, int T, int H, const bf16 *r, const bf16 *k, const bf16 *v, const bf16 *w,
                              const float *u, const float *s0, bf16 *y, float *sT, cudaStream_t stream);
const char *wkv6_cuda_backward(int B, int T, int H, const bf16 *r, const bf16 *k, const bf16 *v, const bf16 *w,
                               const float *u, const float *s0, const bf16 *gy, const float *gsT,
                               bf16 *gr, bf16 *gk, bf16 *gv, bf16 *gw, float *gu_part, float *gs0,
                               float *rA, float *phiT, cudaStream_t stream);

namespace {

const bf16 *bf16_ptr(const torch::Tensor &x) { return reinterpret_cast<const bf16 *>(x.data_ptr<at::BFloat16>()); }
bf16 *bf16_ptr_mut(torch::Tensor &x) { return reinterpret_cast<bf16 *>(x.data_ptr<at::BFloat16>()); }
cudaStream_t as_stream(int64_t handle) { return reinterpret_cast<cudaStream_t>(static_cast<intptr_t>(handle)); }

void check_input(const torch::Tensor &x, const char *name, at::ScalarType dtype) {
    TORCH_CHECK(x.is_cuda(), "wkv6 cuda: ", name, " must be a CUDA tensor");
    TORCH_CHECK(x.scalar_type() == dtype, "wkv6 cuda: ", name, " has dtype ", x.scalar_type(), ", expected ", dtype);
    TORCH_CHECK(x.is_contiguous(), "wkv6 cuda: ", name, " must be contiguous");
}

void check_sequence(const torch::Tensor &x, const char *name, int64_t B, int64_t T, int64_t C) {
    check_input(x, name, at::kBFloat16);
    TORCH_CHECK(x.dim() == 3 && x.size(0) == B && x.size(1) == T && x.size(2) == C,
                "wkv6 cuda: ", name, " has shape ", x.sizes(), ", expected (", B, ", ", T, ", ", C, ")");
}

void check_state(const torch::Tensor &x, const char *name, int64_t B, int64_t H) {
    check_input(x, name, at::kFloat);
    TORCH_CHECK(x.dim() == 4 && x.size(0) == B && x.size(1) == H && x.size(2) == _N_ && x.size(3) == _N_,
                "wkv6 cuda: ", name, " has shape ", x.sizes(), ", expected (", B, ", ", H, ", ", _N_, ", ", _N_, ")");
}

void check_common(const torch::Tensor &r, const torch::Tensor &k, const torch::Tensor &v, const torch::Tensor &w,
                  const torch::Tensor &u, const std::optional<torch::Tensor> &s0) {
    TORCH_CHECK(r.dim() == 3, "wkv6 cuda: r must be (B, T, C), got ", r.sizes());
    const int64_t B = r.size(0), T = r.size(1), C = r.size(2), H = C / _N_;
    TORCH_CHECK(C == H * _N_, "wkv6 cuda: C=", C, " is not a multiple of this build's head size ", _N_);
    TORCH_CHECK(T >= 1, "wkv6 cuda: T=", T, " must be at least 1");
    check_sequence(r, "r", B, T, C); check_sequence(k, "k", B, T, C);
    check_sequence(v, "v", B, T, C); check_sequence(w, "w", B, T, C);
    check_input(u, "u", at::kFloat);
    TORCH_CHECK(u.dim() == 2 && u.size(0) == H && u.size(1) == _N_, "wkv6 cuda: u has shape ", u.sizes(),
                ", expected (", H, ", ", _N_, ")");
    if (s0) check_state(*s0, "state", B, H);
}

}  // namespace

// Returns (y (B, T, C) bf16, final state (B, H, N, N) fp32).
std::tuple<torch::Tensor, torch::Tensor> forward(torch::Tensor r, torch::Tensor k, torch::Tensor v, torch::Tensor w,
                                                 torch::Tensor u, std::optional<torch::Tensor> s0, int64_t stream) {
    check_common(r, k, v, w, u, s0);
    const int64_t B = r.size(0), T = r.size(1), C = r.size(2), H = C / _N_;
    auto y = torch::empty({B, T, C}, r.options());
    auto sT = torch::empty({B, H, _N_, _N_}, u.options());
    const char *err = wkv6_cuda_forward(B, T, H, bf16_ptr(r), bf16_ptr(k), bf16_ptr(v), bf16_ptr(w),
                                        u.data_ptr<float>(), s0 ? s0->data_ptr<float>() : nullptr,
                                        bf16_ptr_mut(y), sT.data_ptr<float>(), as_stream(stream));
    TORCH_CHECK(err == nullptr, "wkv6 cuda forward: kernel launch failed: ", err);
    return {y, sT};
}

// Returns (gr, gk, gv, gw (B, T, C) bf16, gu (H, N) fp32, g_state (B, H, N, N) fp32).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor>
backward(torch::Tensor r, torch::Tensor k, torch::Tensor v, torch::Tensor w, torch::Tensor u,
         std::optional<torch::Tensor> s0, torch::Tensor gy, std::optional<torch::Tensor> gsT, int64_t stream) {
    check_common(r, k, v, w, u, s0);
    const int64_t B = r.size(0), T = r.size(1), C = r.size(2), H = C / _N_;
    check_sequence(gy, "grad of y", B, T, C);
    if (gsT) check_state(*gsT, "grad of the final state", B, H);
    auto gr = torch::empty_like(r), gk = torch::empty_like(r), gv = torch::empty_like(r), gw = torch::empty_like(r);
    auto f32 = u.options();
    auto gu_part = torch::empty({B, H, _N_}, f32);
    auto gs0 = torch::empty({B, H, _N_, _N_}, f32);
    auto rA = torch::empty({B, T, C}, f32);
    auto phiT = torch::empty({B, H, _N_}, f32);
    const char *err = wkv6_cuda_backward(
        B, T, H, bf16_ptr(r), bf16_ptr(k), bf16_ptr(v), bf16_ptr(w), u.data_ptr<float>(),
        s0 ? s0->data_ptr<float>() : nullptr, bf16_ptr(gy), gsT ? gsT->data_ptr<float>() : nullptr,
        bf16_ptr_mut(gr), bf16_ptr_mut(gk), bf16_ptr_mut(gv), bf16_ptr_mut(gw), gu_part.data_ptr<float>(),
        gs0.data_ptr<float>(), rA.data_ptr<float>(), phiT.data_ptr<float>(), as_stream(stream));
    TORCH_CHECK(err == nullptr, "wkv6 cuda backward: kernel launch failed: ", err);
    return {gr, gk, gv, gw, gu_part.sum(0), gs0};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "WKV6 (RWKV-6) recurrence: bf16 in and out, fp32 state";
    m.def("forward", &forward, "(r, k, v, w, u, state|None, stream) -> (y, final_state)");
    m.def("backward", &backward, "(r, k, v, w, u, state|None, gy, g_final_state|None, stream) -> grads");
}
