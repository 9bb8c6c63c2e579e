// The eq (3) forward loop of noisyrnn.engine.aten written as the same ATen calls from C++:
// benchmarks/bench_cpp_loop.py times it against the Python loop (is Python dispatch the cost?).
#include <ATen/ATen.h>
#include <torch/library.h>
// states (M+1,B,N) [states[0] = h0 set], tanhs (M,B,N), drifts (M,B,N) or empty, u (B,M,N), w (N,2N), c (Mc,Bc,Nc) broadcastable, n (M,B,N) or empty
void lip_forward(at::Tensor states, at::Tensor tanhs, at::Tensor drifts, at::Tensor u, at::Tensor w, at::Tensor c, at::Tensor n, at::Tensor p, at::Tensor z) {
  const int64_t M = tanhs.size(0), N = tanhs.size(2);
  const bool need_c = drifts.numel() > 0, has_n = n.numel() > 0, per_step = c.size(0) == M;
  auto pA = p.narrow(1, 0, N), pW = p.narrow(1, N, N);
  for (int64_t m = 0; m < M; ++m) {
    auto h = states.select(0, m);
    at::mm_out(p, h, w);
    at::add_out(z, pW, u.select(1, m));
    auto t = tanhs.select(0, m);
    at::tanh_out(t, z);
    auto f = need_c ? drifts.select(0, m) : pA;
    at::add_out(f, pA, t);
    auto cm = c.select(0, per_step ? m : 0);
    at::Tensor base = h;
    if (has_n) { at::add_out(z, h, n.select(0, m)); base = z; }
    auto out = states.select(0, m + 1);
    at::addcmul_out(out, base, cm, f);
  }
}
TORCH_LIBRARY(nrnn_fused, mm) { mm.def("lip_forward(Tensor(a!) states, Tensor(b!) tanhs, Tensor(c!) drifts, Tensor u, Tensor w, Tensor c, Tensor n, Tensor(d!) p, Tensor(e!) z) -> ()"); }
TORCH_LIBRARY_IMPL(nrnn_fused, CPU, mm) { mm.impl("lip_forward", &lip_forward); }
