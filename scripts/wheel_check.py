"""A wheel of this checkout installed in a clean venv compiles and runs the engine:

    pip wheel --no-deps -w /tmp/wheel . && python3 -m venv /tmp/wv
    /tmp/wv/bin/pip install -c constraints.txt /tmp/wheel/noisyrnn-*.whl
    cd /tmp && /tmp/wv/bin/python PATH/TO/scripts/wheel_check.py
"""
import time, torch, noisyrnn
from noisyrnn import build_model
from noisyrnn.engine import use_backend
from noisyrnn.engine.build import CSRC, extension_name, kernels
print("noisyrnn from", noisyrnn.__file__)
print("csrc shipped:", sorted(p.name for p in CSRC.iterdir()))
t0 = time.time(); ops = kernels(); print(f"engine {extension_name()} built: {ops is not None} in {time.time() - t0:.0f} s; gemm kernel {ops.gemm_kernel()}")
torch.manual_seed(0)
m = build_model("nrnn", 3, 4, hidden_size=32)
x = torch.randn(8, 50, 3)
g = lambda: torch.Generator().manual_seed(1)
with use_backend("cells"):
    a = m(x, noise=True, generator=g())
with use_backend("loop"):
    b = m(x, noise=True, generator=g())
print("cells vs reference loop, max |diff| of logits:", float((a - b).detach().abs().max()))
