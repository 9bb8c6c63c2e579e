"""Where the non-GEMM time of the fused forward goes (pixel-MNIST shapes, noise off).

Times, in one run, the forward loop of :mod:`noisyrnn.engine.aten` (per step: one GEMM and four
small elementwise ATen kernels) three ways: called from Python (as the library does), the
same ATen calls from a C++ loop (a torch extension compiled here, ~20 s), and the GEMMs
alone. If the C++ loop is not much faster, Python dispatch is not the bottleneck and only a
fused, vectorised elementwise kernel could close the gap to the GEMM floor.

    python benchmarks/bench_cpp_loop.py
"""
import time, torch
from pathlib import Path
from torch.utils.cpp_extension import load
t=time.perf_counter()
load("noisyrnn_bench_cpp_loop", sources=[str(Path(__file__).resolve().parent / "csrc" / "aten_loop.cpp")],
     is_python_module=False, verbose=False, extra_cflags=["-O2"])
compile_s = time.perf_counter() - t
B,M,N=128,784,128
torch.manual_seed(0)
u=torch.randn(B,M,N); w=torch.randn(N,2*N)*0.05; c=torch.full((1,1,1),0.1)
states=torch.empty(M+1,B,N); states[0]=0; tanhs=torch.empty(M,B,N); drifts=torch.empty(M,B,N); p=torch.empty(B,2*N); z=torch.empty(B,N)
e=torch.empty(0)
for _ in range(2): torch.ops.nrnn_fused.lip_forward(states,tanhs,drifts,u,w,c,e,p,z)
ts=[]
for _ in range(5):
    t=time.perf_counter(); torch.ops.nrnn_fused.lip_forward(states,tanhs,drifts,u,w,c,e,p,z); ts.append(time.perf_counter()-t)
cpp_ms = sorted(ts)[2] * 1e3
# python equivalent
def pyf():
    for m in range(M):
        h=states[m]
        torch.mm(h,w,out=p)
        torch.add(p[:,N:],u[:,m],out=z)
        tt=torch.tanh(z,out=tanhs[m])
        f=torch.add(p[:,:N],tt,out=drifts[m])
        torch.addcmul(h,c[0],f,out=states[m+1])
ref=states.clone()
pyf()
assert torch.equal(states, ref), "the C++ loop must compute the same states"
ts=[]
for _ in range(5):
    t=time.perf_counter(); pyf(); ts.append(time.perf_counter()-t)
py_ms = sorted(ts)[2] * 1e3
ts=[]
for _ in range(5):
    t=time.perf_counter()
    for m in range(M): torch.mm(states[m],w,out=p)
    ts.append(time.perf_counter()-t)
gemm_ms = sorted(ts)[2] * 1e3
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={B} T={M} N={N}, median of 5; compile {compile_s:.0f} s")
print("| forward loop | ms | / GEMMs alone |")
print("|---|---|---|")
for name, v in [("Python loop of ATen calls (noisyrnn.engine.aten)", py_ms), ("same ATen calls from a C++ loop", cpp_ms),
                ("the GEMMs alone", gemm_ms)]:
    print(f"| {name} | {v:.1f} | {v / gemm_ms:.2f}x |")
